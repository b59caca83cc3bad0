import urql from '@urql/vue'
import { mount } from '@vue/test-utils'
import type { DOMWrapper, VueWrapper } from '@vue/test-utils'
import { describe, expect, it } from 'vitest'
import type { NodeOf } from '../src/api/paging'
import { formatDay } from '../src/domain/format'
import { changed } from '../src/live'
import type { AccessLogQuery, ChildrenQuery } from '../src/gql/graphql'
import ParentHome from '../src/views/parent/ParentHome.vue'
import { fakeApi, page, settle } from './fakeApi'
import type { Answer } from './fakeApi'

type Child = NodeOf<ChildrenQuery['children']>
type Entry = NodeOf<AccessLogQuery['accessLog']>

const ERASED_AT = '2026-03-07T09:15:00+00:00'
const mia: Child = {
  id: 'child-1', fullName: 'Mia Martin', birthDate: '2019-04-12', sex: 'F',
  guardians: ['alice', 'bob'], pendingGuardians: [], doctorUid: 'dr-house',
}
const noah: Child = { ...mia, id: 'child-2', fullName: 'Noah Martin', sex: 'M' }

/** alice's ledger with `children`; eraseChild checks the name as the server does, unless `refusal` is set. */
function ledger(refusal: Answer | null = null, children: Child[] = [mia, noah]) {
  const erased = new Set<string>()
  const api = fakeApi((name, variables) => {
    const childId = variables.childId as string
    switch (name) {
      case 'Children':
        return { data: { children: page(children.filter((c) => !erased.has(c.id))) } }
      case 'EraseChild': {
        if (refusal) return refusal
        const child = children.find((c) => c.id === childId && !erased.has(c.id))
        if (!child) return { code: 'NOT_FOUND', message: 'No such child.' }
        if (variables.confirm !== child.fullName) {
          return { code: 'BAD_USER_INPUT', message: "confirm must equal the child's full name." }
        }
        erased.add(child.id)
        return { data: { eraseChild: { childId, erasedAt: ERASED_AT, channels: ['medical', 'report'] } } }
      }
      case 'AccessLog': {
        const erasure: Entry = {
          id: 'entry-9', at: ERASED_AT, readerUid: 'alice', readerOrg: 'parents', readerRole: 'PARENT',
          what: 'CHILD', recordId: childId, version: null, purpose: 'GUARDIAN', outcome: 'ERASED', blockNumber: 9,
        }
        return { data: { accessLog: page(erased.has(childId) ? [erasure] : []) } }
      }
      case 'MedicalCard':
        if (erased.has(childId)) return { code: 'NOT_FOUND', message: 'This child’s records were erased on 2026-03-07.' }
        return {
          data: {
            medicalCard: {
              childId, version: 1, updatedAt: '2026-03-01T10:00:00+00:00', updatedBy: 'alice',
              bloodType: null, allergies: [], chronicConditions: [], vaccinations: [], examinations: [],
              healthGroup: null, physicalEducationGroup: null, notes: null,
            },
          },
        }
      case 'PendingGuardianships':
        return { data: { pendingGuardianships: [] } }
      case 'EmergencyAccesses':
        return { data: { emergencyAccesses: [] } }
      case 'CardHistory':
        return { data: { medicalCardHistory: page([]) } }
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
    props: { uid: 'alice', schools: ['school-a'] },
    global: { plugins: [[urql, api.client]] },
    attachTo: document.body,
  })
  return { api, wrapper, erased }
}

function button(within: VueWrapper | DOMWrapper<Element>, text: string): DOMWrapper<HTMLButtonElement> {
  const found = within.findAll('button').find((b) => b.text() === text)
  if (!found) throw new Error(`no button ${text}`)
  return found as DOMWrapper<HTMLButtonElement>
}

/** Opens the dialog of the chosen child; returns it and its name field. */
async function openDialog(wrapper: VueWrapper) {
  await button(wrapper, 'Erase this child’s records…').trigger('click')
  await settle()
  const dialog = wrapper.find<HTMLDialogElement>('[data-test="erase-dialog"]')
  return { dialog, name: dialog.find<HTMLInputElement>('input') }
}

describe('Erasing a child’s records', () => {
  it('is the last panel of the child, a danger action that opens a modal dialog saying what happens', async () => {
    const { api, wrapper } = ledger()
    await settle()
    const panels = wrapper.findAll('.child-sections > section')
    expect(panels.at(-1)!.find('h3').text()).toBe('Erase this child’s records')
    expect(panels.at(-1)!.classes()).toContain('danger-zone')
    expect(button(wrapper, 'Erase this child’s records…').classes()).toContain('danger')

    const { dialog, name } = await openDialog(wrapper)
    expect(dialog.element.tagName).toBe('DIALOG')
    expect(dialog.element.open).toBe(true)
    expect(dialog.attributes('aria-modal')).toBe('true')
    const title = dialog.find(`#${CSS.escape(dialog.attributes('aria-labelledby')!)}`)
    expect(title.text()).toBe('Erase Mia Martin’s records?')
    const what = dialog.find(`#${CSS.escape(dialog.attributes('aria-describedby')!)}`).text()
    expect(what).toContain('are destroyed on every channel of the ledger')
    expect(what).toContain('Nobody can read these records again: not the parents (you included)')
    expect(what).toContain('only as ciphertext nobody can read')
    expect(what).toContain('This cannot be undone.')
    // The field is labelled, names the child, and has the focus.
    const label = dialog.find(`label[for="${name.attributes('id')}"]`)
    expect(label.text()).toBe('Type the child’s full name, Mia Martin, to confirm')
    expect(document.activeElement).toBe(name.element)
    expect(api.sent.some((s) => s.name === 'EraseChild')).toBe(false)
    wrapper.unmount()
  })

  it('enables the erasure only when the typed name is exactly the child’s', async () => {
    const { api, wrapper } = ledger()
    await settle()
    const { dialog, name } = await openDialog(wrapper)
    const confirm = button(dialog, 'Erase for ever')
    for (const typed of ['', 'Mia', 'mia martin', 'MIA MARTIN', ' Mia Martin', 'Mia Martin ', 'Mia  Martin']) {
      await name.setValue(typed)
      expect(confirm.element.disabled, `"${typed}"`).toBe(true)
    }
    // Enter in the field does not send a name that does not match either.
    await dialog.find('form').trigger('submit')
    await settle()
    expect(api.sent.some((s) => s.name === 'EraseChild')).toBe(false)
    await name.setValue('Mia Martin')
    expect(confirm.element.disabled).toBe(false)
    wrapper.unmount()
  })

  it('erases with the child’s id and the typed name; the child leaves the list and a notice says when', async () => {
    const { api, wrapper } = ledger()
    await settle()
    expect(wrapper.findAll('.choices button').map((b) => b.find('strong').text())).toEqual(['Mia Martin', 'Noah Martin'])
    const { dialog, name } = await openDialog(wrapper)
    await name.setValue('Mia Martin')
    await button(dialog, 'Erase for ever').trigger('click')
    await settle()
    expect(api.sent.filter((s) => s.name === 'EraseChild').map((s) => s.variables)).toEqual([
      { childId: 'child-1', confirm: 'Mia Martin' },
    ])
    // Noah is chosen now, with a dialog of his own, closed.
    const next = wrapper.find<HTMLDialogElement>('[data-test="erase-dialog"]')
    expect(next.find('h2').text()).toBe('Erase Noah Martin’s records?')
    expect(next.element.open).toBe(false)
    expect(wrapper.findAll('.choices button').map((b) => b.find('strong').text())).toEqual(['Noah Martin'])
    expect(wrapper.find('.child-title').text()).toBe('Noah Martin')
    const notice = wrapper.find('[data-test="erased"]')
    expect(notice.attributes('role')).toBe('status')
    expect(notice.text()).toContain(`Erased on ${formatDay(ERASED_AT)}: Mia Martin’s records can no longer be read by anyone.`)
    expect(document.activeElement).toBe(notice.element)
    // Nothing of Mia is read any more, even when the ledger changes and every view reloads.
    const reads = api.sent.length
    changed()
    await settle()
    expect(api.sent.length).toBeGreaterThan(reads)
    expect(api.sent.slice(reads).filter((s) => s.variables.childId === 'child-1')).toEqual([])

    // What her access log keeps: the erasure, by alice.
    await button(notice, 'Show what the access log keeps').trigger('click')
    await settle()
    expect(api.sent.at(-1)).toEqual({ name: 'AccessLog', variables: { childId: 'child-1', first: 50, after: null } })
    const entry = notice.find('[data-test="access-entry"]')
    expect(entry.classes()).toContain('access-erased')
    expect(entry.text()).toContain('alice (you)')
    expect(entry.text()).toContain('erased the child’s records as a guardian: nobody can read them again')
    wrapper.unmount()
  })

  it('drops a child another guardian erased when the ledger announces it, and reads it no more', async () => {
    const { api, wrapper, erased } = ledger(null, [mia])
    await settle()
    expect(wrapper.find('.child-title').text()).toBe('Mia Martin')
    erased.add(mia.id)
    // The ChildErased event: every view reloads.
    changed()
    await settle()
    expect(wrapper.findAll('.choices button')).toHaveLength(0)
    expect(wrapper.text()).toContain('You have not registered a child yet.')
    expect(wrapper.find('.child-sections').exists()).toBe(false)
    const reads = api.sent.length
    changed()
    await settle()
    expect(api.sent.slice(reads).filter((s) => s.variables.childId === mia.id)).toEqual([])
    // Only the guardian who erased is told when, here.
    expect(wrapper.find('[data-test="erased"]').exists()).toBe(false)
    wrapper.unmount()
  })

  it('shows a refusal in the dialog, which stays open with the child still listed', async () => {
    const { api, wrapper } = ledger({ code: 'BAD_USER_INPUT', message: "confirm must equal the child's full name." })
    await settle()
    const { dialog, name } = await openDialog(wrapper)
    await name.setValue('Mia Martin')
    await button(dialog, 'Erase for ever').trigger('click')
    await settle()
    expect(api.sent.find((s) => s.name === 'EraseChild')?.variables).toEqual({ childId: 'child-1', confirm: 'Mia Martin' })
    expect(dialog.element.open).toBe(true)
    expect(dialog.find('[role="alert"]').text()).toBe(
      "Please check what you entered. confirm must equal the child's full name.",
    )
    expect(wrapper.find('[data-test="erased"]').exists()).toBe(false)
    expect(wrapper.findAll('.choices button').map((b) => b.find('strong').text())).toEqual(['Mia Martin', 'Noah Martin'])

    // Opened again, the dialog starts afresh.
    await button(dialog, 'Cancel').trigger('click')
    await openDialog(wrapper)
    expect(dialog.find('[role="alert"]').exists()).toBe(false)
    expect(name.element.value).toBe('')
    wrapper.unmount()
  })

  it('is cancelled by Escape or Cancel without erasing anything', async () => {
    const { api, wrapper } = ledger()
    await settle()
    const { dialog, name } = await openDialog(wrapper)
    await name.setValue('Mia Martin')
    await name.trigger('keydown', { key: 'Escape' })
    expect(dialog.element.open).toBe(false)
    await openDialog(wrapper)
    expect(dialog.element.open).toBe(true)
    expect(name.element.value).toBe('')
    await button(dialog, 'Cancel').trigger('click')
    expect(dialog.element.open).toBe(false)
    await settle()
    expect(api.sent.some((s) => s.name === 'EraseChild')).toBe(false)
    expect(wrapper.findAll('.choices button')).toHaveLength(2)
    wrapper.unmount()
  })
})
