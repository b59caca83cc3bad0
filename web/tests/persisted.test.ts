// The app sends every operation by the SHA-256 of its text, and the build's manifest holds
// exactly those texts: what `healthledger serve --persisted-only` runs.
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { stringifyDocument } from '@urql/core'
import type { DocumentNode } from 'graphql'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { createApiClient } from '../src/api/client'
import { MeQuery } from '../src/api/operations'
import * as generated from '../src/gql/graphql'

// Read from web/, where npm test runs (happy-dom's URL is no file URL for node:fs).
const manifest = JSON.parse(readFileSync('src/gql/persisted-documents.json', 'utf8')) as Record<string, string>

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex')

function isOperation(value: unknown): value is DocumentNode {
  const document = value as DocumentNode | null
  return (
    typeof value === 'object' &&
    document?.kind === 'Document' &&
    document.definitions.some((definition) => definition.kind === 'OperationDefinition')
  )
}

// Each operation the app can send (fragments alone are no request).
const operations = Object.values(generated).filter(isOperation)
const location = { protocol: 'https:', host: 'healthledger.test' } as Location

type Body = { query?: string; operationName?: string; extensions?: Record<string, unknown> }

/** A fetch that answers PersistedQueryNotFound to a hash alone, as a server without the
 * manifest does, and data to a text; it keeps every request body. */
function serverWithoutManifest(bodies: Body[]): typeof fetch {
  return async (_url, init) => {
    const body = JSON.parse(String(init?.body)) as Body
    bodies.push(body)
    const answer = body.query
      ? { status: 200, json: { data: { me: null, channels: [] } } }
      : {
          status: 404,
          json: {
            errors: [
              { message: 'PersistedQueryNotFound', extensions: { code: 'PERSISTED_QUERY_NOT_FOUND' } },
            ],
          },
        }
    return new Response(JSON.stringify(answer.json), {
      status: answer.status,
      headers: { 'content-type': 'application/graphql-response+json; charset=utf-8' },
    })
  }
}

describe('persisted operations', () => {
  afterEach(() => {
    vi.unstubAllGlobals()
  })

  it('has every operation of the app in the manifest, by the hash of the text urql sends', () => {
    expect(operations.length).toBeGreaterThan(10)
    const sent = Object.fromEntries(
      operations.map((operation) => [sha256(stringifyDocument(operation)), stringifyDocument(operation)]),
    )
    expect(manifest).toEqual(sent)
  })

  it('sends the hash alone, then the text with the hash when the server does not know it', async () => {
    const bodies: Body[] = []
    vi.stubGlobal('fetch', serverWithoutManifest(bodies))
    const result = await createApiClient(location).query(MeQuery, {}).toPromise()
    expect(result.error).toBeUndefined()
    const hash = sha256(stringifyDocument(MeQuery))
    const persistedQuery = { version: 1, sha256Hash: hash }
    expect(bodies).toEqual([
      { operationName: 'Me', variables: {}, extensions: { persistedQuery } },
      {
        operationName: 'Me',
        variables: {},
        query: manifest[hash],
        extensions: { persistedQuery: { ...persistedQuery, miss: true } },
      },
    ])
  })
})
