import urql from '@urql/vue'
import { mount } from '@vue/test-utils'
import { afterEach, describe, expect, it, vi } from 'vitest'
import CardHistory from '../src/components/CardHistory.vue'
import type { CardFieldsFragment } from '../src/gql/graphql'
import { changed } from '../src/live'
import { fakeApi, page, settle, verdict } from './fakeApi'
import { madeProof, SHOWN_CARD, TX_ID } from './logFixtures'

const card = (version: number): CardFieldsFragment => ({
  childId: 'child-1',
  version,
  updatedAt: '2026-03-01T10:00:00+00:00',
  updatedBy: 'dr-house',
  bloodType: null,
  // Each version adds one allergy, so each one's change is known only next to the one before.
  allergies: Array.from({ length: version - 1 }, (_, i) => `allergy ${i + 2}`),
  chronicConditions: [],
  vaccinations: [],
  examinations: [],
  healthGroup: null,
  physicalEducationGroup: null,
  notes: null,
})

/** A card with `versions` versions, served newest first as the API pages them; `failure()`
 * names an error code to answer with instead. */
function history(versions: number, failure: () => string | null = () => null) {
  return fakeApi((name, variables) => {
    if (name !== 'CardHistory') throw new Error(`unexpected ${name}`)
    const code = failure()
    if (code) return { code, message: 'Not now.' }
    const first = variables.first as number
    const start = variables.after === null ? versions : Number(variables.after) - 1
    const shown = Array.from({ length: Math.min(first, start) }, (_, i) => start - i)
    const revisions = shown.map((version) => ({
      version, txId: `tx-${version}`, blockNumber: version, author: 'dr-house',
      timestamp: '2026-03-01T10:00:00+00:00', card: card(version),
    }))
    const last = shown.at(-1) ?? 1
    return { data: { medicalCardHistory: page(revisions, last > 1 ? String(last) : null) } }
  })
}

function open(api: ReturnType<typeof fakeApi>) {
  return mount(CardHistory, { props: { childId: 'child-1' }, global: { plugins: [[urql, api.client]] } })
}

const heads = (wrapper: ReturnType<typeof open>) =>
  wrapper.findAll('.timeline-head strong').map((strong) => strong.text())

describe('CardHistory', () => {
  it('shows the newest 50 versions, and more on request, each with what it changed', async () => {
    const api = history(120)
    const wrapper = open(api)
    await settle()
    expect(heads(wrapper)).toHaveLength(50)
    expect(heads(wrapper)[0]).toBe('Version 120')
    const items = wrapper.findAll('.timeline > li')
    expect(items[0]!.text()).toContain('Allergies: added allergy 120')
    // Version 71's predecessor is on the next page.
    expect(items[49]!.text()).toContain('Show more versions to see what this one changed.')

    await wrapper.find('[data-test="show-more"]').trigger('click')
    await settle()
    expect(api.sent.at(-1)).toEqual({
      name: 'CardHistory',
      variables: { childId: 'child-1', first: 50, after: '71' },
    })
    expect(heads(wrapper)).toHaveLength(100)
    expect(wrapper.findAll('.timeline > li')[49]!.text()).toContain('Allergies: added allergy 71')

    await wrapper.find('[data-test="show-more"]').trigger('click')
    await settle()
    expect(heads(wrapper)).toHaveLength(120)
    expect(heads(wrapper).at(-1)).toBe('Version 1')
    expect(wrapper.findAll('.timeline > li').at(-1)!.text()).toContain('Card created.')
    expect(wrapper.find('[data-test="show-more"]').exists()).toBe(false)
    expect(new Set(heads(wrapper)).size).toBe(120)
  })

  it('keeps as many versions as were shown when the ledger changes', async () => {
    const api = history(120)
    const wrapper = open(api)
    await settle()
    await wrapper.find('[data-test="show-more"]').trigger('click')
    await settle()
    changed()
    await settle()
    expect(api.sent.at(-1)).toEqual({
      name: 'CardHistory',
      variables: { childId: 'child-1', first: 100, after: null },
    })
    expect(heads(wrapper)).toHaveLength(100)
    expect(wrapper.find('[data-test="show-more"]').exists()).toBe(true)
  })

  it('keeps the versions while the ledger is unreachable, and shows none once it refuses them', async () => {
    let failure: string | null = null
    const wrapper = open(history(3, () => failure))
    await settle()
    expect(heads(wrapper)).toEqual(['Version 3', 'Version 2', 'Version 1'])

    failure = 'UNAVAILABLE'
    changed()
    await settle()
    expect(wrapper.find('[role="alert"]').text()).toContain('The ledger cannot be reached right now')
    expect(heads(wrapper)).toEqual(['Version 3', 'Version 2', 'Version 1'])

    failure = 'NOT_FOUND'
    changed()
    await settle()
    expect(wrapper.find('[role="alert"]').text()).toContain('This record does not exist, or you are not allowed to see it.')
    expect(heads(wrapper)).toEqual([])
  })
})

describe('CardHistory: verifying a version', () => {
  afterEach(() => {
    vi.unstubAllGlobals()
    localStorage.clear()
  })

  const NO_COMMITMENT = 'This version was written before records carried commitments, so it has no verified read.'

  /** Versions 3, 2 and 1 with cursors c3, c2, c1; version 3 is the card of the made proof. */
  function verifiable() {
    const made = madeProof()
    vi.stubGlobal('fetch', async () => new Response(`${made.signer.verifierKey()}\n`))
    const revision = (version: number) => ({
      version, txId: version === 3 ? TX_ID : `tx-${version}`, blockNumber: version, author: 'dr-house',
      timestamp: '2026-03-01T10:00:00+00:00', card: version === 3 ? SHOWN_CARD : card(version),
    })
    return fakeApi((name, variables) => {
      if (name === 'CardHistory') {
        const edges = [3, 2, 1].map((version) => ({ cursor: `c${version}`, node: revision(version) }))
        return { data: { medicalCardHistory: { edges, pageInfo: { hasNextPage: false, endCursor: 'c1' } } } }
      }
      if (name !== 'CardRevisionProof') throw new Error(`unexpected ${name}`)
      if (variables.after !== null) return { code: 'UNAVAILABLE', message: NO_COMMITMENT }
      const node = { version: 3, txId: TX_ID, proof: made.record }
      return { data: { medicalCardHistory: { edges: [{ node }] } } }
    })
  }

  it('asks for the proof of the version clicked only, and verifies it in the browser', async () => {
    const api = verifiable()
    const wrapper = open(api)
    await settle()
    expect(api.sent.map((s) => s.name)).toEqual(['CardHistory'])
    await wrapper.get('button[aria-label="Verify version 3"]').trigger('click')
    await settle()
    expect(api.sent.at(-1)).toEqual({ name: 'CardRevisionProof', variables: { childId: 'child-1', after: null } })
    const newest = wrapper.findAll('.timeline > li')[0]!
    expect(await verdict(newest)).toMatch(/^✓ Verified in the log at checkpoint 7/)
  })

  it('says plainly why a version has no verified read', async () => {
    const api = verifiable()
    const wrapper = open(api)
    await settle()
    await wrapper.get('button[aria-label="Verify version 2"]').trigger('click')
    await settle()
    expect(api.sent.at(-1)).toEqual({ name: 'CardRevisionProof', variables: { childId: 'child-1', after: 'c3' } })
    const second = wrapper.findAll('.timeline > li')[1]!
    expect(await verdict(second)).toBe(`Not verified: ${NO_COMMITMENT}`)
    expect(wrapper.find('[data-test="verified"]').exists()).toBe(false)
  })
})
