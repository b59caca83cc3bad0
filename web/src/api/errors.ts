// API failures as sentences for people: one per error, by its extensions.code.
import type { CombinedError } from '@urql/core'

export type ErrorCode =
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'BAD_USER_INPUT'
  | 'UNAVAILABLE'
  | 'INTERNAL'
  | 'GRAPHQL_PARSE_FAILED'
  | 'GRAPHQL_VALIDATION_FAILED'

export interface Problem {
  code: ErrorCode | 'NETWORK' | 'UNKNOWN'
  /** What happened, in a sentence that needs no knowledge of GraphQL. */
  sentence: string
  /** The server's own sentence, when it adds something; never JSON. */
  detail: string | null
}

const SENTENCES: Record<Problem['code'], string> = {
  UNAUTHENTICATED:
    'Your certificate was not accepted: it may be missing, expired or revoked. Import a current certificate and reload the page.',
  FORBIDDEN: 'You are not allowed to do this.',
  NOT_FOUND: 'This record does not exist, or you are not allowed to see it.',
  CONFLICT: 'This could not be done because the record changed or is already in that state.',
  BAD_USER_INPUT: 'Please check what you entered.',
  UNAVAILABLE: 'The ledger cannot be reached right now, so nothing was saved. Please try again in a moment.',
  INTERNAL: 'Something went wrong on the server. Nothing you did caused it.',
  GRAPHQL_PARSE_FAILED: 'This page is out of date with the server. Please reload it.',
  GRAPHQL_VALIDATION_FAILED: 'This page is out of date with the server. Please reload it.',
  NETWORK: 'The server could not be reached. Check your connection and that your certificate is imported.',
  UNKNOWN: 'Something went wrong.',
}

const KNOWN = new Set(Object.keys(SENTENCES))

function codeOf(value: unknown): Problem['code'] {
  return typeof value === 'string' && KNOWN.has(value) ? (value as Problem['code']) : 'UNKNOWN'
}

/** A server message is shown only if it reads as a sentence (never a JSON blob). */
function sentenceOrNull(message: string | undefined): string | null {
  const text = (message ?? '').trim()
  if (!text || text.startsWith('{') || text.startsWith('[') || text.length > 300) return null
  return text
}

export function describeError(error: CombinedError): Problem[] {
  if (error.graphQLErrors.length > 0) {
    return error.graphQLErrors.map((e) => {
      const code = codeOf(e.extensions?.code)
      return { code, sentence: SENTENCES[code], detail: sentenceOrNull(e.message) }
    })
  }
  const status = (error.response as Response | undefined)?.status
  if (status === 401) {
    return [{ code: 'UNAUTHENTICATED', sentence: SENTENCES.UNAUTHENTICATED, detail: null }]
  }
  return [{ code: 'NETWORK', sentence: SENTENCES.NETWORK, detail: null }]
}

export function hasCode(error: CombinedError | undefined | null, code: ErrorCode): boolean {
  return !!error && error.graphQLErrors.some((e) => e.extensions?.code === code)
}
