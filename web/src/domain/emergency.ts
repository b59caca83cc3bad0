// Emergency ("break-glass") access: the rule its reason must meet, and when one is open.
import type { EmergencyAccessFieldsFragment } from '../gql/graphql'

/** The fewest characters the ledger accepts as a reason. */
export const REASON_MIN_LENGTH = 20

/** Why `reason` would be refused, as a sentence; null when it may be sent. */
export function reasonProblem(reason: string): string | null {
  // Characters as people count them (code points), as the ledger counts them.
  const length = Array.from(reason.trim()).length
  if (length >= REASON_MIN_LENGTH) return null
  return `Give a reason of at least ${REASON_MIN_LENGTH} characters (now ${length}): the parents read it.`
}

/** Not ended, and its time not run out at `now` (epoch milliseconds). */
export function isOpen(
  access: Pick<EmergencyAccessFieldsFragment, 'endedAt' | 'validUntil'>,
  now: number,
): boolean {
  return !access.endedAt && Date.parse(access.validUntil) > now
}
