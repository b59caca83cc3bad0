// What changed between two versions of a medical card, in words.
import type { CardFieldsFragment } from '../gql/graphql'
import { healthGroupLabel, peGroupLabel } from './format'

type Card = CardFieldsFragment

function listChange(label: string, before: string[], after: string[]): string | null {
  const added = after.filter((item) => !before.includes(item))
  const removed = before.filter((item) => !after.includes(item))
  const parts = [
    added.length ? `added ${added.join(', ')}` : '',
    removed.length ? `removed ${removed.join(', ')}` : '',
  ].filter(Boolean)
  return parts.length ? `${label}: ${parts.join('; ')}` : null
}

function valueChange(label: string, before: string, after: string): string | null {
  return before === after ? null : `${label}: ${before} → ${after}`
}

const vaccination = (v: Card['vaccinations'][number]) => `${v.vaccine} dose ${v.dose} (${v.date})`
const examination = (e: Card['examinations'][number]) => `examination on ${e.date}`

/**
 * Sentences saying what `after` changed relative to `before`; for the first version
 * (no `before`) a single sentence that the card was created.
 */
export function describeCardChange(before: Card | null, after: Card): string[] {
  if (!before) return ['Card created.']
  const changes = [
    valueChange('Blood type', before.bloodType ?? 'not set', after.bloodType ?? 'not set'),
    listChange('Allergies', before.allergies, after.allergies),
    listChange('Chronic conditions', before.chronicConditions, after.chronicConditions),
    listChange('Vaccinations', before.vaccinations.map(vaccination), after.vaccinations.map(vaccination)),
    listChange('Examinations', before.examinations.map(examination), after.examinations.map(examination)),
    valueChange('Health group', healthGroupLabel(before.healthGroup), healthGroupLabel(after.healthGroup)),
    valueChange(
      'PE group',
      peGroupLabel(before.physicalEducationGroup),
      peGroupLabel(after.physicalEducationGroup),
    ),
    (before.notes ?? '') === (after.notes ?? '') ? null : 'Notes changed',
  ].filter((change): change is string => change !== null)
  return changes.length ? changes : ['Saved without changes.']
}
