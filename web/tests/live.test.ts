import { afterEach, describe, expect, it } from 'vitest'
import { accessRevision, listen, notices, revision } from '../src/live'
import { fakeApi } from './fakeApi'

/** A page listening on `medical`, to which the ledger sends one event named `name`. */
function hear(name: string, role: 'PARENT' | 'DOCTOR') {
  const api = fakeApi((operation, variables) => {
    if (operation !== 'Events') throw new Error(`unexpected ${operation}`)
    return {
      data: { events: { channel: variables.channel, name, blockNumber: 7, txId: 'tx-7', subjectId: 'child-1' } },
    }
  })
  return listen(api.client, ['medical'], role)
}

describe('live updates', () => {
  afterEach(() => notices.splice(0))

  it('reloads every view and tells the doctor when a school asks for a report', () => {
    const before = { all: revision.value, access: accessRevision.value }
    const stop = hear('ReportRequested', 'DOCTOR')
    stop()
    expect(revision.value).toBe(before.all + 1)
    expect(accessRevision.value).toBe(before.access)
    expect(notices.map((n) => n.text)).toEqual(['A school asked you for a health report on a patient.'])
  })

  it('reloads only the access log when a read is recorded, so guardians’ pages do not set each other off', () => {
    const before = { all: revision.value, access: accessRevision.value }
    const stop = hear('AccessRecorded', 'PARENT')
    stop()
    expect(accessRevision.value).toBe(before.access + 1)
    expect(revision.value).toBe(before.all)
    expect(notices).toEqual([])
  })

  it('tells a guardian once of an erasure, which each channel announces', () => {
    const before = revision.value
    const api = fakeApi((operation, variables) => {
      if (operation !== 'Events') throw new Error(`unexpected ${operation}`)
      return {
        data: { events: { channel: variables.channel, name: 'ChildErased', blockNumber: 9, txId: 'tx-9', subjectId: 'child-1' } },
      }
    })
    const stop = listen(api.client, ['medical', 'report'], 'PARENT')
    stop()
    expect(revision.value).toBe(before + 2)
    expect(notices.map((n) => n.text)).toEqual([
      'A guardian erased a child’s records: nobody, you included, can read them again.',
    ])
  })

  it('tells a parent at once when a doctor opens emergency access', () => {
    const stop = hear('EmergencyAccessOpened', 'PARENT')
    stop()
    expect(notices.map((n) => n.text)).toEqual([
      'A doctor opened emergency access to your child’s medical card: see the banner at the top.',
    ])
  })
})
