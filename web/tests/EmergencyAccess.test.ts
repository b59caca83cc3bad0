import urql from '@urql/vue'
import { mount } from '@vue/test-utils'
import { describe, expect, it } from 'vitest'
import type { CardFieldsFragment, EmergencyAccessFieldsFragment } from '../src/gql/graphql'
import DoctorHome from '../src/views/doctor/DoctorHome.vue'
import { fakeApi, page, settle } from './fakeApi'

const REASON = 'Unconscious after a fall; allergies needed before treatment.'
const card: CardFieldsFragment = {
  childId: 'child-9', version: 3, updatedAt: '2026-03-01T10:00:00+00:00', updatedBy: 'dr-house',
  bloodType: 'A+', allergies: ['peanuts'], chronicConditions: [], vaccinations: [], examinations: [],
  healthGroup: 2, physicalEducationGroup: 'MAIN', notes: 'Asthma confirmed.',
}

/** dr-grey, with no patients, opens emergency access to child-9; `ended` makes the ledger refuse reads. */
function ledger() {
  const state = { ended: false }
  let opened: EmergencyAccessFieldsFragment | null = null
  const refused = { code: 'NOT_FOUND', message: 'No such child is visible to you.' }
  const api = fakeApi((name, variables) => {
    switch (name) {
      case 'Agreements':
        return { data: { agreements: page([]) } }
      case 'Children':
        return { data: { children: page([]) } }
      case 'ReportRequests':
        return { data: { reportRequests: page([]) } }
      case 'Reports':
        return { data: { reports: page([]) } }
      case 'OpenEmergencyAccess':
        opened = {
          id: 'emergency-1', childId: variables.childId as string, doctorUid: 'dr-grey',
          reason: variables.reason as string, openedAt: new Date().toISOString(),
          validUntil: new Date(Date.now() + 3_600_000).toISOString(), endedAt: null, endedBy: null,
        }
        return { data: { openEmergencyAccess: opened } }
      case 'EndEmergencyAccess':
        state.ended = true
        return { data: { endEmergencyAccess: { ...opened!, endedAt: new Date().toISOString(), endedBy: 'dr-grey' } } }
      case 'Child':
        return state.ended ? refused : { data: { child: { id: 'child-9', fullName: 'Mia Martin', birthDate: '2019-04-12' } } }
      case 'MedicalCard':
        return state.ended ? refused : { data: { medicalCard: card } }
      case 'CardHistory': {
        const revision = { version: 3, txId: 'tx-3', blockNumber: 3, author: 'dr-house', timestamp: card.updatedAt, card }
        return state.ended ? refused : { data: { medicalCardHistory: page([revision]) } }
      }
      default:
        throw new Error(`unexpected ${name}`)
    }
  })
  const wrapper = mount(DoctorHome, { props: { uid: 'dr-grey' }, global: { plugins: [[urql, api.client]] }, attachTo: document.body })
  return { api, wrapper, state }
}

async function openWith(wrapper: ReturnType<typeof ledger>['wrapper'], reason: string): Promise<void> {
  await wrapper.find('input[id$="-child"]').setValue(' child-9 ')
  await wrapper.find('form.inline-form').trigger('submit')
  await wrapper.find('textarea[id$="-reason"]').setValue(reason)
  await wrapper.find('dialog form').trigger('submit')
  await settle()
}

describe('Emergency access, as a doctor', () => {
  it('asks for a reason in a dialog and refuses a short one before sending anything', async () => {
    const { api, wrapper } = ledger()
    await settle()
    await wrapper.find('input[id$="-child"]').setValue('child-9')
    await wrapper.find('form.inline-form').trigger('submit')
    const dialog = wrapper.find('dialog')
    expect((dialog.element as HTMLDialogElement).open).toBe(true)
    expect(dialog.find('h2').text()).toBe('Emergency access to child child-9')
    await dialog.find('textarea').setValue('  Fell over.  ')
    await dialog.find('form').trigger('submit')
    await settle()
    expect(dialog.find('[data-test="reason-problem"]').text()).toBe(
      'Give a reason of at least 20 characters (now 10): the parents read it.',
    )
    expect(dialog.find('textarea').attributes('aria-invalid')).toBe('true')
    expect(api.sent.some((s) => s.name === 'OpenEmergencyAccess')).toBe(false)
    wrapper.unmount()
  })

  it('opens it and shows the card read-only; once it has ended, the next read is refused', async () => {
    const { api, wrapper, state } = ledger()
    await settle()
    await openWith(wrapper, `  ${REASON} `)
    expect(api.sent.find((s) => s.name === 'OpenEmergencyAccess')?.variables).toEqual({ childId: 'child-9', reason: REASON })
    expect((wrapper.find('dialog').element as HTMLDialogElement).open).toBe(false)
    expect(wrapper.find('.child-title').text()).toMatch(/^Mia Martin\s+born/)
    expect(wrapper.find('[data-test="emergency-state"]').text()).toContain(`You may read this card, never change it, until`)
    expect(wrapper.find('[data-test="emergency-state"]').text()).toContain(REASON)
    const cardSection = wrapper.find('[aria-labelledby="emergency-card-heading"]')
    expect(cardSection.text()).toContain('Asthma confirmed.')
    expect(cardSection.findAll('input, textarea, select')).toHaveLength(0)
    expect(wrapper.find('[aria-label="Emergency accesses you opened here"]').text()).toContain('Child child-9')
    expect(wrapper.find('[aria-labelledby="emergency-history-heading"]').text()).toContain('Version 3 by dr-house')

    // The parents end it; the doctor's next read is refused, and what was read under the
    // access does not stay on screen.
    state.ended = true
    const sentBefore = api.sent.length
    await wrapper.findAll('button').find((b) => b.text() === 'Read the card again')!.trigger('click')
    await settle()
    expect(api.sent.slice(sentBefore).map((s) => s.name).sort()).toEqual(['CardHistory', 'Child', 'MedicalCard'])
    expect(cardSection.find('[role="alert"]').text()).toContain('This record does not exist, or you are not allowed to see it.')
    expect(wrapper.find('[data-test="emergency-state"]').text()).toBe(
      'The card can no longer be read. An emergency access ends when its time runs out, or when you or the parents end it.',
    )
    expect(cardSection.text()).not.toContain('Asthma confirmed.')
    expect(wrapper.findAll('button').map((b) => b.text())).not.toContain('End emergency access')
    expect(wrapper.find('.child-title').text()).toBe('Child child-9')
    expect(wrapper.find('[aria-labelledby="emergency-history-heading"]').text()).not.toContain('Version 3')
    wrapper.unmount()
  })

  it('lets the doctor end it, after which the page reads nothing more', async () => {
    const { api, wrapper } = ledger()
    await settle()
    await openWith(wrapper, REASON)
    const sentBefore = api.sent.length
    await wrapper.findAll('button').find((b) => b.text() === 'End emergency access')!.trigger('click')
    await settle()
    expect(api.sent.find((s) => s.name === 'EndEmergencyAccess')?.variables).toEqual({ id: 'emergency-1' })
    expect(wrapper.find('[data-test="emergency-state"]').text()).toMatch(/^You ended this emergency access on /)
    expect(wrapper.find('[aria-labelledby="emergency-card-heading"]').exists()).toBe(false)
    expect(api.sent.slice(sentBefore).filter((s) => ['MedicalCard', 'CardHistory', 'Child'].includes(s.name))).toEqual([])
    wrapper.unmount()
  })
})
