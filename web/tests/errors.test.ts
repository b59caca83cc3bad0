import { CombinedError } from '@urql/core'
import { GraphQLError } from 'graphql'
import { describe, expect, it } from 'vitest'
import { describeError, hasCode } from '../src/api/errors'

const withCode = (code: string, message: string) =>
  new CombinedError({ graphQLErrors: [new GraphQLError(message, { extensions: { code } })] })

describe('describeError', () => {
  it('turns each error code into a sentence and keeps the server sentence as detail', () => {
    const [problem] = describeError(
      withCode('CONFLICT', 'The card is at version 3, not 2: it changed since you read it.'),
    )
    expect(problem).toEqual({
      code: 'CONFLICT',
      sentence: 'This could not be done because the record changed or is already in that state.',
      detail: 'The card is at version 3, not 2: it changed since you read it.',
    })
    expect(describeError(withCode('FORBIDDEN', 'x'))[0]!.sentence).toBe('You are not allowed to do this.')
    expect(describeError(withCode('UNAVAILABLE', 'x'))[0]!.sentence).toMatch(/nothing was saved/)
  })

  it('never shows JSON, and names no GraphQL internals for unknown codes', () => {
    const [problem] = describeError(withCode('SOMETHING_NEW', '{"errors": [1, 2]}'))
    expect(problem).toEqual({ code: 'UNKNOWN', sentence: 'Something went wrong.', detail: null })
  })

  it('explains a network failure and a refused certificate', () => {
    const network = new CombinedError({ networkError: new Error('Failed to fetch') })
    expect(describeError(network)[0]!.code).toBe('NETWORK')
    const refused = new CombinedError({
      networkError: new Error('Unauthorized'),
      response: new Response('', { status: 401 }),
    })
    expect(describeError(refused)[0]!.sentence).toMatch(/certificate was not accepted/)
  })

  it('finds a code among several errors', () => {
    expect(hasCode(withCode('FORBIDDEN', 'no'), 'FORBIDDEN')).toBe(true)
    expect(hasCode(withCode('FORBIDDEN', 'no'), 'CONFLICT')).toBe(false)
    expect(hasCode(undefined, 'CONFLICT')).toBe(false)
  })
})
