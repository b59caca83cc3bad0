// The proofs behind verified reads (domain/verify.ts): heavier queries, sent only when the
// user asks to verify what the page shows.
import type { Client } from '@urql/vue'
import type { VerifiedRecordData } from '../domain/verify'
import { describeError } from './errors'
import type { Problem } from './errors'
import { CardRevisionProofQuery, ReportProofQuery } from './operations'

/** The server's proof of a record, or why there is none (a fragment after "not verified: "). */
export type ProofAnswer = { record: VerifiedRecordData } | { reason: string }

/** A refusal as the server words it: its own sentence says why there is no proof. */
export function problemReason(problems: Problem[]): string {
  return problems.map((p) => (p.detail ?? p.sentence).replace(/\.$/, '')).join('; ')
}

/** The proof of card version `version`, the one after `after` in the child's history (the
 * cursor of the version shown above it; null for the newest). */
export async function cardRevisionProof(
  client: Client,
  childId: string,
  after: string | null,
  version: number,
): Promise<ProofAnswer> {
  const result = await client
    .query(CardRevisionProofQuery, { childId, after }, { requestPolicy: 'network-only' })
    .toPromise()
  if (result.error) return { reason: problemReason(describeError(result.error)) }
  const revision = result.data?.medicalCardHistory.edges[0]?.node
  if (!revision || revision.version !== version) {
    return { reason: `the card’s history changed since version ${version} was shown: reload the page` }
  }
  return { record: revision.proof }
}

/** The proof of the version of report `id` the server shows now. */
export async function reportProof(client: Client, id: string): Promise<ProofAnswer> {
  const result = await client
    .query(ReportProofQuery, { id }, { requestPolicy: 'network-only' })
    .toPromise()
  if (result.error) return { reason: problemReason(describeError(result.error)) }
  if (!result.data) return { reason: 'the server gave no proof' }
  return { record: result.data.report.proof }
}
