import urql from '@urql/vue'
import { mount } from '@vue/test-utils'
import { describe, expect, it } from 'vitest'
import { today } from '../src/domain/format'
import type { CardFieldsFragment } from '../src/gql/graphql'
import CardEditor from '../src/views/doctor/CardEditor.vue'
import { fakeApi, page, settle } from './fakeApi'

const card = (version: number, changes: Partial<CardFieldsFragment> = {}): CardFieldsFragment => ({
  childId: 'child-1',
  version,
  updatedAt: '2026-03-01T10:00:00+00:00',
  updatedBy: 'dr-house',
  bloodType: null,
  allergies: [],
  chronicConditions: [],
  vaccinations: [],
  examinations: [],
  healthGroup: 2,
  physicalEducationGroup: 'MAIN',
  notes: null,
  ...changes,
})

/** The ledger: version 2 when the form loads; dr-quinn writes version 3 before the save. */
function ledger(first: CardFieldsFragment = card(2)) {
  let current = first
  const api = fakeApi((name, variables) => {
    if (name === 'MedicalCard') return { data: { medicalCard: current } }
    if (name === 'UpdateMedicalCard') {
      if (variables.expectedVersion !== current.version) {
        return { code: 'CONFLICT', message: `The card is at version ${current.version}, not ${String(variables.expectedVersion)}.` }
      }
      current = card(current.version + 1, variables.patch as Partial<CardFieldsFragment>)
      return { data: { updateMedicalCard: current } }
    }
    if (name === 'CardHistory') {
      // Newest first, one version a page, so the editor must read back page by page.
      const revisions = [current, card(2), card(1, { healthGroup: null, physicalEducationGroup: null })]
      const from = variables.after === null ? 0 : Number(variables.after)
      const [c] = revisions.slice(from, from + 1)
      const revision = { version: c!.version, txId: `tx-${c!.version}`, blockNumber: c!.version, author: c!.updatedBy, timestamp: c!.updatedAt, card: c! }
      return { data: { medicalCardHistory: page([revision], from + 1 < revisions.length ? String(from + 1) : null) } }
    }
    throw new Error(`unexpected ${name}`)
  })
  const otherDoctorWrites = () => {
    current = card(3, { updatedBy: 'dr-quinn', allergies: ['penicillin'] })
  }
  return { api, otherDoctorWrites }
}

async function openEditor(api: ReturnType<typeof fakeApi>) {
  const wrapper = mount(CardEditor, {
    props: { childId: 'child-1', uid: 'dr-house' },
    global: { plugins: [[urql, api.client]] },
  })
  await settle()
  return wrapper
}

describe('CardEditor', () => {
  it('saves only the changed fields at the version it loaded', async () => {
    const { api } = ledger()
    const wrapper = await openEditor(api)
    expect(wrapper.text()).toContain('Editing version 2')
    await wrapper.find('textarea[id$="-allergies"]').setValue('peanuts\n\n  latex ')
    await wrapper.find('form').trigger('submit')
    await settle()
    const update = api.sent.find((s) => s.name === 'UpdateMedicalCard')
    expect(update?.variables).toEqual({
      childId: 'child-1',
      expectedVersion: 2,
      patch: { allergies: ['peanuts', 'latex'] },
    })
    expect(wrapper.text()).toContain('Saved as version 3.')
    expect(wrapper.text()).toContain('Editing version 3')
  })

  it('on a stale version shows who changed the card and keeps the edits until reload', async () => {
    const { api, otherDoctorWrites } = ledger()
    const wrapper = await openEditor(api)
    otherDoctorWrites()
    await wrapper.find('textarea[id$="-notes"]').setValue('My note')
    await wrapper.find('form').trigger('submit')
    await settle()

    const warning = wrapper.find('[data-test="stale"]')
    expect(warning.text()).toContain('Not saved: the card changed while you were editing.')
    expect(warning.text()).toContain('Version 3 by dr-quinn')
    expect(warning.text()).toContain('Allergies: added penicillin')
    expect(wrapper.text()).toContain('The card is at version 3, not 2.')
    expect(api.sent.filter((s) => s.name === 'UpdateMedicalCard')).toHaveLength(1)
    // The history is read back from its newest version only as far as the one edited.
    expect(api.sent.filter((s) => s.name === 'CardHistory').map((s) => s.variables.after)).toEqual([null, '1'])
    expect((wrapper.find('textarea[id$="-notes"]').element as HTMLTextAreaElement).value).toBe('My note')

    await wrapper.find('[data-test="stale"] button').trigger('click')
    await settle()
    expect(wrapper.find('[data-test="stale"]').exists()).toBe(false)
    expect(wrapper.text()).toContain('Editing version 3')
    expect((wrapper.find('textarea[id$="-allergies"]').element as HTMLTextAreaElement).value).toBe('penicillin')
    expect((wrapper.find('textarea[id$="-notes"]').element as HTMLTextAreaElement).value).toBe('')
  })

  it('records a new examination as the doctor’s own and sends the others back unchanged', async () => {
    const quinn = { date: '2025-09-01', doctorUid: 'dr-quinn', heightCm: 120, weightKg: 22.5, findings: 'healthy' }
    const house = { date: '2025-10-01', doctorUid: 'dr-house', heightCm: 121, weightKg: null, findings: null }
    const { api } = ledger(card(2, { examinations: [quinn, house] }))
    const wrapper = await openEditor(api)
    await wrapper.findAll('button').find((b) => b.text() === 'Add examination')!.trigger('click')
    expect(wrapper.findAll('[data-test="examined-by"]').map((p) => p.text())).toEqual([
      'Examination 1, by dr-quinn, who alone can change it',
      'Examination 2, by you',
      'Examination 3, new: it will be recorded as yours',
    ])
    expect(wrapper.find('input[id$="-exam-f-0"]').attributes('disabled')).toBeDefined()
    expect(wrapper.find('input[id$="-exam-f-1"]').attributes('disabled')).toBeUndefined()
    expect(wrapper.findAll('input').some((i) => /doctor/i.test(i.attributes('id') ?? ''))).toBe(false)
    await wrapper.find('input[id$="-exam-f-2"]').setValue('growing well')
    await wrapper.find('form').trigger('submit')
    await settle()
    const update = api.sent.find((s) => s.name === 'UpdateMedicalCard')
    expect(update?.variables.patch).toEqual({
      examinations: [quinn, house, { date: today(), doctorUid: null, heightCm: null, weightKg: null, findings: 'growing well' }],
    })
  })

  it('says so instead of sending a patch that changes nothing', async () => {
    const { api } = ledger()
    const wrapper = await openEditor(api)
    await wrapper.find('form').trigger('submit')
    await settle()
    expect(wrapper.text()).toContain('Nothing changed, so nothing was saved.')
    expect(api.sent.some((s) => s.name === 'UpdateMedicalCard')).toBe(false)
  })
})
