// How an entry of a child's access log reads to the child's parents.
import type { AccessObject, AccessOutcome, AccessPurpose } from '../gql/graphql'

const WHAT: Record<AccessObject, string> = {
  MEDICAL_CARD: 'the medical card',
  CARD_HISTORY: 'the medical card’s history',
  REPORT_CONTENT: 'a health report',
  CHILD: 'the child’s record',
}

const PURPOSE: Record<AccessPurpose, string> = {
  GUARDIAN: 'as a guardian',
  TREATMENT: 'as the pediatrician of an agreement',
  SCHOOL_ADMISSION: 'as a school permitted to read the report',
  EMERGENCY: 'under emergency access',
  ADMINISTRATION: 'for administration',
}

interface Described {
  what: AccessObject
  version?: number | null
  purpose: AccessPurpose
  outcome: AccessOutcome
}

/** What was read (or tried), and why it was allowed: "read the medical card (version 3) under emergency access". */
export function accessSentence(entry: Described): string {
  const what = entry.version == null ? WHAT[entry.what] : `${WHAT[entry.what]} (version ${entry.version})`
  if (entry.outcome === 'REFUSED') return `tried to read ${what} and was refused`
  return `read ${what} ${PURPOSE[entry.purpose]}`
}
