import urql from '@urql/vue'
import { mount } from '@vue/test-utils'
import { describe, expect, it } from 'vitest'
import type { EmergencyAccessFieldsFragment } from '../src/gql/graphql'
import EmergencyBanner from '../src/views/parent/EmergencyBanner.vue'
import { fakeApi, settle } from './fakeApi'

const HOUR = 3_600_000
const REASON = 'Unconscious after a fall; allergies needed before treatment.'

const access = (id: string, changes: Partial<EmergencyAccessFieldsFragment> = {}): EmergencyAccessFieldsFragment => ({
  id,
  childId: 'child-1',
  doctorUid: 'dr-grey',
  reason: REASON,
  openedAt: new Date(Date.now() - HOUR / 4).toISOString(),
  validUntil: new Date(Date.now() + HOUR / 2).toISOString(),
  endedAt: null,
  endedBy: null,
  ...changes,
})

/** The child's emergency accesses: one open, one ended, one run out; "End it" ends the open one. */
function ledger() {
  let open = access('emergency-3')
  const api = fakeApi((name, variables) => {
    if (name === 'EmergencyAccesses') {
      return {
        data: {
          emergencyAccesses: [
            open,
            access('emergency-2', { endedAt: new Date().toISOString(), endedBy: 'bob' }),
            access('emergency-1', { validUntil: new Date(Date.now() - HOUR).toISOString() }),
          ],
        },
      }
    }
    if (name === 'EndEmergencyAccess' && variables.id === open.id) {
      open = { ...open, endedAt: new Date().toISOString(), endedBy: 'alice' }
      return { data: { endEmergencyAccess: open } }
    }
    throw new Error(`unexpected ${name}`)
  })
  const wrapper = mount(EmergencyBanner, {
    props: { child: { id: 'child-1', fullName: 'Mia Martin' } },
    global: { plugins: [[urql, api.client]] },
  })
  return { api, wrapper }
}

describe('EmergencyBanner', () => {
  it('shows an open emergency access with the doctor, reason and end; ended ones not', async () => {
    const { wrapper } = ledger()
    await settle()
    const banners = wrapper.findAll('[data-test="emergency-banner"]')
    expect(banners).toHaveLength(1)
    const banner = banners[0]!
    expect(banner.attributes('role')).toBe('alert')
    expect(banner.find('h2').text()).toBe('Emergency access to Mia Martin’s medical card is open')
    expect(banner.text()).toContain('dr-grey, a pediatrician of the hospital, opened it')
    expect(banner.text()).toMatch(/can read the card and its history until \S/)
    expect(banner.find('[data-test="emergency-reason"]').text()).toBe(REASON)
  })

  it('ends it with "End it", and is gone once the ledger says it ended', async () => {
    const { api, wrapper } = ledger()
    await settle()
    await wrapper.find('button').trigger('click')
    await settle()
    expect(api.sent.filter((s) => s.name === 'EndEmergencyAccess')).toEqual([
      { name: 'EndEmergencyAccess', variables: { id: 'emergency-3' } },
    ])
    // The action reloaded every live view, this one too.
    expect(api.sent.at(-1)!.name).toBe('EmergencyAccesses')
    expect(wrapper.find('[data-test="emergency-banner"]').exists()).toBe(false)
  })

  it('says when it could not check, rather than showing nothing', async () => {
    const api = fakeApi(() => ({ code: 'UNAVAILABLE', message: 'The ledger is unreachable.' }))
    const wrapper = mount(EmergencyBanner, {
      props: { child: { id: 'child-1', fullName: 'Mia Martin' } },
      global: { plugins: [[urql, api.client]] },
    })
    await settle()
    expect(wrapper.text()).toContain('Whether a doctor holds emergency access to Mia Martin’s card could not be checked')
    expect(wrapper.find('[role="alert"]').text()).toContain('The ledger cannot be reached right now')
  })
})
