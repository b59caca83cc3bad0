import urql from '@urql/vue'
import { mount } from '@vue/test-utils'
import { describe, expect, it, vi } from 'vitest'
import type { NodeOf } from '../src/api/paging'
import type { AccessLogQuery } from '../src/gql/graphql'
import { accessRevision } from '../src/live'
import AccessLogPanel from '../src/views/parent/AccessLogPanel.vue'
import { fakeApi, page, settle } from './fakeApi'

type Entry = NodeOf<AccessLogQuery['accessLog']>

const entry = (n: number, changes: Partial<Entry> = {}): Entry => ({
  id: `entry-${n}`,
  at: '2026-03-01T10:00:00+00:00',
  readerUid: 'dr-house',
  readerOrg: 'hospital',
  readerRole: 'DOCTOR',
  what: 'MEDICAL_CARD',
  recordId: 'child-1',
  version: 3,
  purpose: 'TREATMENT',
  outcome: 'PERMITTED',
  blockNumber: n,
  ...changes,
})

function open(answer: (variables: Record<string, unknown>) => Entry[] | [Entry[], string]) {
  const api = fakeApi((name, variables) => {
    if (name !== 'AccessLog') throw new Error(`unexpected ${name}`)
    const found = answer(variables)
    const [nodes, next] = Array.isArray(found[0]) ? (found as [Entry[], string]) : [found as Entry[], null]
    return { data: { accessLog: page(nodes, next) } }
  })
  const wrapper = mount(AccessLogPanel, {
    props: { childId: 'child-1', uid: 'alice' },
    global: { plugins: [[urql, api.client]] },
  })
  return { api, wrapper }
}

describe('AccessLogPanel', () => {
  it('says who read what, as whom and why, and marks emergency reads, refusals and your own', async () => {
    const { wrapper } = open(() => [
      entry(9, { readerUid: 'dr-grey', purpose: 'EMERGENCY', outcome: 'REFUSED', version: null }),
      entry(8, { readerUid: 'dr-grey', purpose: 'EMERGENCY' }),
      entry(7, { readerUid: 'school-a-office', readerOrg: 'school-a', readerRole: 'SCHOOL', what: 'REPORT_CONTENT', purpose: 'SCHOOL_ADMISSION', recordId: 'report-1', version: null }),
      entry(6, { readerUid: 'alice', readerOrg: 'parents', readerRole: 'PARENT', what: 'CARD_HISTORY', purpose: 'GUARDIAN' }),
      entry(5),
    ])
    await settle()
    // The guardians' own reads are left out until asked for.
    expect(wrapper.findAll('[data-test="access-entry"]')).toHaveLength(4)
    expect(wrapper.find('[data-test="left-out"]').text()).toBe('1 read by guardians not shown.')
    await wrapper.find('input[type="checkbox"]').setValue(true)
    expect(wrapper.find('[data-test="left-out"]').exists()).toBe(false)
    const items = wrapper.findAll('[data-test="access-entry"]')
    expect(items.map((item) => item.find('p:nth-child(2)').text())).toEqual([
      'tried to read the medical card and was refused',
      'read the medical card (version 3) under emergency access',
      'read a health report as a school permitted to read the report',
      'read the medical card’s history (version 3) as a guardian',
      'read the medical card (version 3) as the pediatrician of an agreement',
    ])
    expect(items[0]!.classes()).toContain('access-refused')
    expect(items[0]!.find('.tag').text()).toBe('Refused')
    expect(items[1]!.classes()).toContain('access-emergency')
    expect(items[1]!.find('.tag').text()).toBe('Emergency')
    expect(items[2]!.text()).toContain('school-a-office — School staff, school-a')
    expect(items[3]!.classes()).toContain('access-own')
    expect(items[3]!.text()).toContain('alice (you) — Parent, parents')
    expect(items[4]!.text()).toContain('dr-house — Pediatrician, hospital')
    expect(items[4]!.text()).toContain('2026')
    expect(items[4]!.text()).toMatch(/, block 5$/)
    for (const plain of [items[2]!, items[4]!]) {
      expect(plain.classes()).not.toContain('access-refused')
      expect(plain.classes()).not.toContain('access-emergency')
      expect(plain.find('.tag').exists()).toBe(false)
    }
  })

  it('marks the erasure of the child’s records, one entry for the channels that each record it', async () => {
    const erasure = { readerUid: 'alice', readerOrg: 'parents', readerRole: 'PARENT', what: 'CHILD', version: null, purpose: 'GUARDIAN', outcome: 'ERASED' } as const
    const { wrapper } = open(() => [
      entry(87, { ...erasure, id: 'medical-erasure' }),
      entry(22, { ...erasure, id: 'report-erasure' }),
      entry(21, { readerUid: 'bob', readerOrg: 'parents', readerRole: 'PARENT', purpose: 'GUARDIAN' }),
      entry(20),
    ])
    await settle()
    // An erasure by a guardian is no read of theirs: it is shown without asking.
    const items = wrapper.findAll('[data-test="access-entry"]')
    expect(items).toHaveLength(2)
    expect(wrapper.find('[data-test="left-out"]').text()).toBe('1 read by guardians not shown.')
    const [erased, read] = items
    expect(erased!.classes()).toContain('access-erased')
    expect(erased!.classes()).not.toContain('access-refused')
    expect(erased!.find('.tag').text()).toBe('Erased')
    expect(erased!.text()).toContain('alice (you) — Parent, parents')
    expect(erased!.find('p:nth-child(2)').text()).toBe('erased the child’s records as a guardian: nobody can read them again')
    expect(erased!.find('p:nth-child(3)').text()).toMatch(/, blocks 22 and 87 \(recorded on each of the ledger’s channels\)$/)
    expect(read!.classes()).not.toContain('access-erased')
    expect(read!.text()).toMatch(/, block 20$/)

    await wrapper.find('input[type="checkbox"]').setValue(true)
    expect(wrapper.findAll('[data-test="access-entry"]')).toHaveLength(3)
  })

  it('pages with Show more, and reloads when a read is recorded', async () => {
    let recorded = 60
    const { api, wrapper } = open((variables) => {
      const top = variables.after === null ? recorded : Number(variables.after) - 1
      const numbers = Array.from({ length: Math.min(variables.first as number, top) }, (_, i) => top - i)
      const last = numbers.at(-1)!
      return last > 1 ? [numbers.map((n) => entry(n)), String(last)] : numbers.map((n) => entry(n))
    })
    await settle()
    expect(wrapper.findAll('[data-test="access-entry"]')).toHaveLength(50)
    await wrapper.find('[data-test="show-more"]').trigger('click')
    await settle()
    expect(wrapper.findAll('[data-test="access-entry"]')).toHaveLength(60)
    expect(wrapper.find('[data-test="show-more"]').exists()).toBe(false)

    recorded = 61
    accessRevision.value += 1
    await settle()
    // As many as were shown, the newest first.
    expect(api.sent.at(-1)).toEqual({ name: 'AccessLog', variables: { childId: 'child-1', first: 60, after: null } })
    expect(wrapper.findAll('[data-test="access-entry"]')).toHaveLength(60)
    expect(wrapper.find('[data-test="access-entry"]').text()).toContain('block 61')
    expect(wrapper.find('[data-test="show-more"]').exists()).toBe(true)
  })

  it('looks at the log again every 10 seconds while it is shown, in case an event was missed', async () => {
    vi.useFakeTimers()
    try {
      let newest = 1
      const { api, wrapper } = open(() => Array.from({ length: newest }, (_, n) => entry(newest - n)))
      await vi.advanceTimersByTimeAsync(0)
      expect(wrapper.findAll('[data-test="access-entry"]')).toHaveLength(1)
      newest = 2
      await vi.advanceTimersByTimeAsync(9_000)
      expect(api.sent).toHaveLength(1)
      await vi.advanceTimersByTimeAsync(1_000)
      expect(api.sent).toHaveLength(2)
      expect(wrapper.findAll('[data-test="access-entry"]')).toHaveLength(2)
      wrapper.unmount()
      await vi.advanceTimersByTimeAsync(30_000)
      expect(api.sent).toHaveLength(2)
    } finally {
      vi.useRealTimers()
    }
  })

  it('says so when nobody has read anything, or nobody but the guardians', async () => {
    const { wrapper } = open(() => [])
    await settle()
    expect(wrapper.text()).toContain('Nobody has read anything yet.')

    const guardians = open(() => [
      entry(2, { readerUid: 'bob', readerOrg: 'parents', readerRole: 'PARENT', purpose: 'GUARDIAN' }),
      entry(1, { readerUid: 'alice', readerOrg: 'parents', readerRole: 'PARENT', purpose: 'GUARDIAN' }),
    ])
    await settle()
    expect(guardians.wrapper.find('[data-test="left-out"]').text()).toBe(
      '2 reads by guardians not shown, and nobody else among the newest 2.',
    )
    expect(guardians.wrapper.findAll('[data-test="access-entry"]')).toHaveLength(0)
  })
})
