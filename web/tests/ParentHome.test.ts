import urql from '@urql/vue'
import { mount } from '@vue/test-utils'
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { NodeOf } from '../src/api/paging'
import { today } from '../src/domain/format'
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
      case 'AccessLog':
        return { data: { accessLog: page([]) } }
      case 'EmergencyAccesses':
        return { data: { emergencyAccesses: [] } }
      default:
        throw new Error(`unexpected ${name}`)
    }
  })
}

afterEach(() => {
  vi.restoreAllMocks()
})

describe('ParentHome', () => {
  it('shows a guardianship offer, accepts it, and then lists and opens the child', async () => {
    const api = ledger()
    const wrapper = mount(ParentHome, {
      props: { uid: 'bob', schools: ['school-a'] },
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

  it('shows an open emergency access to any of the children at the top, whichever is chosen', async () => {
    const noah: Child = { ...mia, id: 'child-2', fullName: 'Noah Martin', pendingGuardians: [] }
    const api = fakeApi((name, variables) => {
      switch (name) {
        case 'Children':
          return { data: { children: page([{ ...mia, pendingGuardians: [] }, noah]) } }
        case 'EmergencyAccesses':
          return {
            data: {
              emergencyAccesses:
                variables.childId === noah.id
                  ? [{
                      id: 'emergency-1', childId: noah.id, doctorUid: 'dr-grey',
                      reason: 'Unconscious after a fall at the playground.',
                      openedAt: new Date().toISOString(),
                      validUntil: new Date(Date.now() + 3_600_000).toISOString(),
                      endedAt: null, endedBy: null,
                    }]
                  : [],
            },
          }
        case 'PendingGuardianships':
          return { data: { pendingGuardianships: [] } }
        case 'MedicalCard':
          return { code: 'NOT_FOUND', message: 'No card.' }
        case 'CardHistory':
          return { data: { medicalCardHistory: page([]) } }
        case 'AccessLog':
        case 'Agreements':
        case 'AdmissionRequests':
        case 'ReportRequests':
        case 'Reports': {
          const field = name.charAt(0).toLowerCase() + name.slice(1)
          return { data: { [field]: page([]) } }
        }
        default:
          throw new Error(`unexpected ${name}`)
      }
    })
    const wrapper = mount(ParentHome, {
      props: { uid: 'alice', schools: [] },
      global: { plugins: [[urql, api.client]] },
    })
    await settle()
    expect(wrapper.find('.child-title').text()).toBe('Mia Martin')
    expect(wrapper.find('[data-test="child-id"]').text()).toBe('child-1')
    const banners = wrapper.findAll('[data-test="emergency-banner"]')
    expect(banners).toHaveLength(1)
    expect(banners[0]!.find('h2').text()).toBe('Emergency access to Noah Martin’s medical card is open')
    // Above everything else on the page.
    expect(wrapper.element.firstElementChild!.contains(banners[0]!.element)).toBe(true)
    expect(wrapper.find('#access-heading').text()).toBe('Who saw this record')
    expect(api.sent.find((s) => s.name === 'AccessLog')?.variables).toEqual({ childId: 'child-1', first: 50, after: null })
  })

  it('offers the chosen child’s record as a FHIR file, in the panel before the erasure', async () => {
    const noah: Child = { ...mia, id: 'child-2', fullName: 'Noah Martin', pendingGuardians: [] }
    const api = fakeApi((name, variables) => {
      switch (name) {
        case 'Children':
          return { data: { children: page([{ ...mia, pendingGuardians: [] }, noah]) } }
        case 'ChildFhirRecord':
          return { data: { child: { id: variables.id, fhir: { resourceType: 'Bundle', type: 'searchset', entry: [] } } } }
        case 'PendingGuardianships':
          return { data: { pendingGuardianships: [] } }
        case 'EmergencyAccesses':
          return { data: { emergencyAccesses: [] } }
        case 'MedicalCard':
          return { code: 'NOT_FOUND', message: 'No card.' }
        case 'CardHistory':
          return { data: { medicalCardHistory: page([]) } }
        case 'AccessLog':
        case 'Agreements':
        case 'AdmissionRequests':
        case 'ReportRequests':
        case 'Reports': {
          const field = name.charAt(0).toLowerCase() + name.slice(1)
          return { data: { [field]: page([]) } }
        }
        default:
          throw new Error(`unexpected ${name}`)
      }
    })
    const clicked: string[] = []
    vi.spyOn(URL, 'createObjectURL').mockReturnValue('blob:https://healthledger.test/1')
    vi.spyOn(URL, 'revokeObjectURL').mockImplementation(() => {})
    vi.spyOn(HTMLAnchorElement.prototype, 'click').mockImplementation(function (this: HTMLAnchorElement) {
      clicked.push(this.download)
    })
    const wrapper = mount(ParentHome, {
      props: { uid: 'alice', schools: [] },
      global: { plugins: [[urql, api.client]] },
      attachTo: document.body,
    })
    await settle()
    const panels = wrapper.findAll('.child-sections > section')
    expect(panels.at(-2)!.find('h3').text()).toBe('Download the record')
    await wrapper.findAll('.choices button').at(1)!.trigger('click')
    await settle()
    await panels.at(-2)!.find('button').trigger('click')
    await settle()
    expect(api.sent.filter((s) => s.name === 'ChildFhirRecord').map((s) => s.variables)).toEqual([{ id: 'child-2' }])
    expect(clicked).toEqual([`noah-martin-${today()}.fhir.json`])
    wrapper.unmount()
  })

  it('says in the register form that other parents must accept guardianship', async () => {
    const wrapper = mount(ParentHome, {
      props: { uid: 'bob', schools: [] },
      global: { plugins: [[urql, ledger().client]] },
    })
    await settle()
    expect(wrapper.find('[id$="-others-hint"]').text()).toContain(
      'Each is offered guardianship and becomes a guardian only after accepting it.',
    )
  })
})
