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

/** What was read (or tried), and why it was allowed: "read the medical card (version 3) under emergency access";
 * or the erasure of the child's records, the last entry anyone can read. */
export function accessSentence(entry: Described): string {
  if (entry.outcome === 'ERASED') {
    const by = entry.purpose === 'GUARDIAN' ? 'as a guardian' : 'for administration'
    return `erased the child’s records ${by}: nobody can read them again`
  }
  const what = entry.version == null ? WHAT[entry.what] : `${WHAT[entry.what]} (version ${entry.version})`
  if (entry.outcome === 'REFUSED') return `tried to read ${what} and was refused`
  return `read ${what} ${PURPOSE[entry.purpose]}`
}

/** An entry as shown: the blocks that record it (an erasure is recorded on every channel). */
export type Shown<Entry> = Entry & { blocks: number[] }

/**
 * The entries as the panel lists them, in their order. An erasure is recorded on every channel,
 * each channel's entry in a block of its own: they are one event, so the first stands for all,
 * with every block.
 */
export function mergeErasures<Entry extends { outcome: AccessOutcome; blockNumber: number }>(
  entries: Entry[],
): Shown<Entry>[] {
  const erasureBlocks = entries
    .filter((entry) => entry.outcome === 'ERASED')
    .map((entry) => entry.blockNumber)
    .sort((a, b) => a - b)
  const shown: Shown<Entry>[] = []
  for (const entry of entries) {
    if (entry.outcome !== 'ERASED') shown.push({ ...entry, blocks: [entry.blockNumber] })
    else if (!shown.some((other) => other.outcome === 'ERASED')) shown.push({ ...entry, blocks: erasureBlocks })
  }
  return shown
}

/** "block 5", "blocks 22 and 87", "blocks 1, 2 and 3". */
export function blocksText(blocks: number[]): string {
  if (blocks.length === 1) return `block ${blocks[0]}`
  return `blocks ${blocks.slice(0, -1).join(', ')} and ${blocks.at(-1)}`
}
