// What a school will be able to read of a report, computed from the card as it stands.
import type { CardFieldsFragment, ReportContentQuery } from '../gql/graphql'

export type ReportContentView = NonNullable<ReportContentQuery['report']['content']>

/**
 * The content the server copies into a report from this card and conclusion: the same
 * fields and nothing else (no notes, no examinations, no blood type).
 */
export function reportPreview(
  childName: string,
  card: Pick<
    CardFieldsFragment,
    'healthGroup' | 'physicalEducationGroup' | 'allergies' | 'chronicConditions' | 'vaccinations'
  >,
  conclusion: string,
): ReportContentView {
  return {
    childName,
    healthGroup: card.healthGroup ?? null,
    physicalEducationGroup: card.physicalEducationGroup ?? null,
    allergies: [...card.allergies],
    chronicConditions: [...card.chronicConditions],
    vaccinations: card.vaccinations.map(({ vaccine, date, dose }) => ({ vaccine, date, dose })),
    conclusion: conclusion.trim(),
  }
}
