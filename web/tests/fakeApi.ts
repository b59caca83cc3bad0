// A urql client answered by a function instead of a server, for component tests.
import { Client, CombinedError, makeResult } from '@urql/core'
import type { Operation, OperationResult } from '@urql/core'
import { GraphQLError } from 'graphql'
import { vi } from 'vitest'
import { filter, fromPromise, fromValue, mergeMap, pipe } from 'wonka'

export type Answer = { data: unknown } | { code: string; message: string }

export interface FakeApi {
  client: Client
  /** Every operation sent, by operation name, with its variables. */
  sent: { name: string; variables: Record<string, unknown> }[]
}

function operationName(operation: Operation): string {
  const definition = operation.query.definitions.find((d) => d.kind === 'OperationDefinition')
  return definition && 'name' in definition && definition.name ? definition.name.value : ''
}

/** `answer` may return a promise, to hold an answer back while a test looks at the page waiting. */
export function fakeApi(
  answer: (name: string, variables: Record<string, unknown>) => Answer | Promise<Answer>,
): FakeApi {
  const sent: FakeApi['sent'] = []
  const respond = (operation: Operation) => {
    const name = operationName(operation)
    const variables = (operation.variables ?? {}) as Record<string, unknown>
    sent.push({ name, variables })
    const reply = answer(name, variables)
    return reply instanceof Promise
      ? fromPromise(reply.then((held) => resultOf(operation, held)))
      : fromValue(resultOf(operation, reply))
  }
  const client = new Client({
    url: 'https://healthledger.test/graphql',
    exchanges: [() => (operations$) => pipe(operations$, filter((op) => op.kind !== 'teardown'), mergeMap(respond))],
  })
  return { client, sent }
}

function resultOf(operation: Operation, reply: Answer): OperationResult {
  if ('data' in reply) return makeResult(operation, { data: reply.data as Record<string, unknown> })
  return {
    operation,
    data: undefined,
    error: new CombinedError({
      graphQLErrors: [new GraphQLError(reply.message, { extensions: { code: reply.code } })],
    }),
    stale: false,
    hasNext: false,
  }
}

/** Lets pending promises and Vue's render queue settle. */
/**
 * The verdict a verification shows in `within` once it is done. Its hashing and signature
 * checks (WebCrypto) leave the event loop, so they can outlast `settle` on a busy machine:
 * this waits for the verdict itself, up to five seconds.
 */
export async function verdict(within: {
  find(selector: string): { exists(): boolean; text(): string }
}): Promise<string> {
  return vi.waitFor(
    () => {
      const status = within.find('[role="status"]')
      if (!status.exists()) throw new Error('no verdict yet')
      return status.text()
    },
    { timeout: 5000, interval: 10 },
  )
}

export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i += 1) await new Promise((resolve) => setTimeout(resolve, 0))
}

/** A connection's answer: these nodes, and whether more follow after `endCursor`. */
export function page<Node>(nodes: Node[], endCursor: string | null = null) {
  return {
    edges: nodes.map((node) => ({ node })),
    pageInfo: { hasNextPage: endCursor !== null, endCursor },
  }
}
