import { mount } from '@vue/test-utils'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import VerifyRecord from '../src/components/VerifyRecord.vue'
import type { ProofAnswer } from '../src/api/proofs'
import { PIN_PREFIX } from '../src/domain/logKeys'
import { LogSigner, madeProof } from './logFixtures'
import type { MadeProof } from './logFixtures'
import { settle, verdict } from './fakeApi'

/** The server: the proof (or a refusal) for the GraphQL query, and `keyLine` at /log/medical.pub. */
function serve(answer: ProofAnswer, keyLine: string | null) {
  const fetchProof = vi.fn(async () => answer)
  const requests: string[] = []
  vi.stubGlobal('fetch', async (url: string) => {
    requests.push(url)
    return keyLine === null ? new Response('No.\n', { status: 404 }) : new Response(`${keyLine}\n`)
  })
  return { fetchProof, requests }
}

function open(made: MadeProof, fetchProof: () => Promise<ProofAnswer>) {
  return mount(VerifyRecord, { props: { label: 'Verify version 3', expected: made.expected, fetchProof } })
}

async function click(wrapper: ReturnType<typeof open>): Promise<string> {
  await wrapper.get('button[aria-label="Verify version 3"]').trigger('click')
  return verdict(wrapper)
}

describe('VerifyRecord', () => {
  beforeEach(() => localStorage.clear())
  afterEach(() => vi.unstubAllGlobals())

  it('asks for the proof only on a click, and says at which checkpoint the record is verified', async () => {
    const made = madeProof()
    const server = serve({ record: made.record }, made.signer.verifierKey())
    const wrapper = open(made, server.fetchProof)
    await settle()
    expect(server.fetchProof).not.toHaveBeenCalled()
    expect(wrapper.find('[role="status"]').exists()).toBe(false)

    const said = await click(wrapper)
    expect(said).toMatch(/^✓ Verified in the log at checkpoint 7\b/)
    expect(said).toContain(`This browser trusts the log’s key ${made.signer.origin}+${made.signer.keyId.toString('hex')} from now on.`)
    expect(server.requests).toEqual(['/log/medical.pub'])
    expect(localStorage.getItem(`${PIN_PREFIX}medical`)).toBe(made.signer.verifierKey())

    // Once pinned, the key is only compared.
    expect(await click(wrapper)).not.toContain('from now on')
    expect(server.fetchProof).toHaveBeenCalledTimes(2)
  })

  it('refuses a checkpoint signed by a key other than the one pinned: the log’s key changed', async () => {
    const first = madeProof()
    localStorage.setItem(`${PIN_PREFIX}medical`, first.signer.verifierKey())
    const forged = madeProof({}, new LogSigner())
    const server = serve({ record: forged.record }, forged.signer.verifierKey())
    const said = await click(open(forged, server.fetchProof))
    expect(said).toBe(
      `Not verified: the log’s key changed: this browser trusts ${first.signer.origin}+${first.signer.keyId.toString('hex')} ` +
        `since it first used it, and the server now gives ${forged.signer.origin}+${forged.signer.keyId.toString('hex')}.`,
    )
    expect(localStorage.getItem(`${PIN_PREFIX}medical`)).toBe(first.signer.verifierKey())
  })

  it('shows a failed check plainly, never a badge', async () => {
    const made = madeProof()
    made.record.inclusion.hashes.reverse()
    const server = serve({ record: made.record }, made.signer.verifierKey())
    const wrapper = open(made, server.fetchProof)
    expect(await click(wrapper)).toMatch(/^Not verified: the inclusion proof leads to root [0-9a-f]{64}, not to/)
    expect(wrapper.find('[data-test="verified"]').exists()).toBe(false)
  })

  it('says why the server gave no proof', async () => {
    const made = madeProof()
    const sentence = 'This version was written before records carried commitments, so it has no verified read'
    const server = serve({ reason: sentence }, made.signer.verifierKey())
    expect(await click(open(made, server.fetchProof))).toBe(`Not verified: ${sentence}.`)
    expect(server.requests).toEqual([])
  })

  it('says so when the server gives no key for the log', async () => {
    const made = madeProof()
    const server = serve({ record: made.record }, null)
    expect(await click(open(made, server.fetchProof))).toBe(
      'Not verified: the server did not give the log’s key (HTTP 404).',
    )
  })

  it('forgets a verdict when the page shows another version', async () => {
    const made = madeProof()
    const server = serve({ record: made.record }, made.signer.verifierKey())
    const wrapper = open(made, server.fetchProof)
    await click(wrapper)
    await wrapper.setProps({ expected: { ...made.expected, txId: 'another', shown: { version: 4 } } })
    expect(wrapper.find('[role="status"]').exists()).toBe(false)
    expect(wrapper.get('button').text()).toBe('Verify')
  })
})
