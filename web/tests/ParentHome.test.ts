import urql from '@urql/vue'
import { mount } from '@vue/test-utils'
import { describe, expect, it } from 'vitest'
import type { NodeOf } from '../src/api/paging'
import type { ChildrenQuery } from '../src/gql/graphql'
import ParentHome from '../src/views/parent/ParentHome.vue'
import { fakeApi, page, settle } from './fakeApi'

type Child = NodeOf<ChildrenQuery['children']>

const mia: Child = {
  id: 'child-1',
  fullName: 'Mia Martin',
  birthDate: '2019-04-12',
  sex: null,
  guardians: ['alice', 'bob'],
  pendingGuardians: ['carol'],
  doctorUid: null,
}

/** bob's ledger: offered guardianship of Mia by alice, a guardian once he accepts. */
function ledger() {
  let accepted = false
  return fakeApi((name, variables) => {
    switch (name) {
      case 'Children':
        return { data: { children: page(accepted ? [mia] : []) } }
      case 'PendingGuardianships':
        return {
          data: {
            pendingGuardianships: accepted
              ? []
              : [{ id: mia.id, fullName: mia.fullName, birthDate: mia.birthDate }],
          },
        }
      case 'AcceptGuardianship':
        if (variables.childId !== mia.id) return { code: 'NOT_FOUND', message: 'No such child.' }
        accepted = true
        return { data: { acceptGuardianship: { id: mia.id, fullName: mia.fullName } } }
      case 'MedicalCard':
        return {
          data: {
            medicalCard: {
              childId: mia.id, version: 1, updatedAt: '2026-03-01T10:00:00+00:00', updatedBy: 'alice',
              bloodType: null, allergies: [], chronicConditions: [], vaccinations: [], examinations: [],
              healthGroup: null, physicalEducationGroup: null, notes: null,
            },
          },
        }
      case 'CardHistory':
        return { data: { medicalCardHistory: page([]) } }
      case 'Agreements':
        return { data: { agreements: page([]) } }
      case 'AdmissionRequests':
        return { data: { admissionRequests: page([]) } }
      case 'ReportRequests':
        return { data: { reportRequests: page([]) } }
      case 'Reports':
        return { data: { reports: page([]) } }
      default:
        throw new Error(`unexpected ${name}`)
    }
  })
}

describe('ParentHome', () => {
  it('shows a guardianship offer, accepts it, and then lists and opens the child', async () => {
    const api = ledger()
    const wrapper = mount(ParentHome, {
      props: { schools: ['school-a'] },
      global: { plugins: [[urql, api.client]] },
    })
    await settle()
    const offer = wrapper.find('[data-test="offer"]')
    expect(offer.text()).toContain('Mia Martin, born')
    expect(offer.text()).toContain('2019')
    expect(wrapper.text()).toContain('You have not registered a child yet.')
    expect(wrapper.find('.child-sections').exists()).toBe(false)

    await offer.find('button').trigger('click')
    await settle()
    expect(api.sent.find((s) => s.name === 'AcceptGuardianship')?.variables).toEqual({ childId: 'child-1' })
    expect(wrapper.find('[data-test="offer"]').exists()).toBe(false)
    expect(wrapper.find('#offers-heading').exists()).toBe(false)
    const choice = wrapper.find('.choices button')
    expect(choice.text()).toContain('Mia Martin')
    expect(choice.attributes('aria-pressed')).toBe('true')

    const guardians = wrapper.find('[data-test="guardians"]').text()
    expect(guardians).toContain('alice — guardian')
    expect(guardians).toContain('bob — guardian')
    expect(wrapper.find('[data-test="pending-guardian"]').text()).toBe(
      'carol — offered guardianship, has not accepted yet',
    )
  })

  it('says in the register form that other parents must accept guardianship', async () => {
    const wrapper = mount(ParentHome, {
      props: { schools: [] },
      global: { plugins: [[urql, ledger().client]] },
    })
    await settle()
    expect(wrapper.find('[id$="-others-hint"]').text()).toContain(
      'Each is offered guardianship and becomes a guardian only after accepting it.',
    )
  })
})
