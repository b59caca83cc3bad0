import urql from '@urql/vue'
import { mount } from '@vue/test-utils'
import { describe, expect, it } from 'vitest'
import type { NodeOf } from '../src/api/paging'
import { endOfDay } from '../src/domain/format'
import type { AgreementsQuery } from '../src/gql/graphql'
import AgreementsPanel from '../src/views/parent/AgreementsPanel.vue'
import { fakeApi, page, settle } from './fakeApi'

type Agreement = NodeOf<AgreementsQuery['agreements']>

const agreement = (id: string, changes: Partial<Agreement>): Agreement => ({
  id,
  childId: 'child-1',
  parentUid: 'alice',
  doctorUid: 'dr-house',
  status: 'ACTIVE',
  createdAt: '2026-01-10T10:00:00+00:00',
  updatedAt: '2026-01-10T10:00:00+00:00',
  validUntil: null,
  ...changes,
})

function open(agreements: Agreement[]) {
  const api = fakeApi((name, variables) => {
    switch (name) {
      case 'Agreements':
        return { data: { agreements: page(agreements) } }
      case 'SignAgreement':
        return { data: { signAgreement: { id: 'agreement-new', status: 'PENDING', validUntil: variables.validUntil } } }
      case 'ExtendAgreement':
        return { data: { extendAgreement: { id: variables.id, status: 'ACTIVE', validUntil: variables.validUntil } } }
      default:
        throw new Error(`unexpected ${name}`)
    }
  })
  const wrapper = mount(AgreementsPanel, { props: { childId: 'child-1' }, global: { plugins: [[urql, api.client]] } })
  return { api, wrapper }
}

describe('AgreementsPanel', () => {
  it('shows each agreement’s end date, an expired one as ended, and extends it to a chosen date', async () => {
    const { api, wrapper } = open([
      agreement('agreement-3', { doctorUid: 'dr-grey', validUntil: '2027-01-31T22:59:59+00:00' }),
      agreement('agreement-2', { status: 'EXPIRED', validUntil: '2026-02-28T22:59:59+00:00' }),
      agreement('agreement-1', { status: 'REVOKED', doctorUid: 'dr-who' }),
    ])
    await settle()
    const [active, expired, revoked] = wrapper.findAll('[data-test="agreement"]')
    expect(active!.find('[data-test="agreement-dates"]').text()).toMatch(/^Signed .*2026.*; ends .*2027.*\.$/)
    expect(expired!.text()).toContain('ended: its end date passed, so this pediatrician can no longer read or edit the card')
    expect(expired!.find('[data-test="agreement-dates"]').text()).toMatch(/; ended .*2026/)
    // An expired agreement can be extended, not revoked; a revoked one neither.
    expect(expired!.text()).not.toContain('Revoke')
    expect(revoked!.find('form').exists()).toBe(false)
    expect(revoked!.find('[data-test="agreement-dates"]').text()).toMatch(/no end date\.$/)

    await expired!.find('input[type="date"]').setValue('2027-02-28')
    await expired!.find('form').trigger('submit')
    await settle()
    expect(api.sent.find((s) => s.name === 'ExtendAgreement')?.variables).toEqual({
      id: 'agreement-2',
      validUntil: endOfDay('2027-02-28'),
    })
    expect(expired!.find('button').text()).toBe('Extend agreement with dr-house')
  })

  it('signs an agreement with an end date, or without one', async () => {
    const { api, wrapper } = open([])
    await settle()
    const sign = wrapper.findAll('form').at(-1)!
    await sign.find('input:not([type="date"])').setValue(' dr-house ')
    await sign.find('input[type="date"]').setValue('2026-12-31')
    await sign.trigger('submit')
    await settle()
    await sign.find('input:not([type="date"])').setValue('dr-grey')
    await sign.trigger('submit')
    await settle()
    expect(api.sent.filter((s) => s.name === 'SignAgreement').map((s) => s.variables)).toEqual([
      { childId: 'child-1', doctorUid: 'dr-house', validUntil: endOfDay('2026-12-31') },
      { childId: 'child-1', doctorUid: 'dr-grey', validUntil: null },
    ])
  })
})
