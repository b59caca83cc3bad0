import { describe, expect, it } from 'vitest'
import { describeCardChange } from '../src/domain/cardDiff'
import { draftOf, patchOf } from '../src/domain/cardForm'
import { accessSentence, blocksText, mergeErasures } from '../src/domain/access'
import { isOpen, reasonProblem } from '../src/domain/emergency'
import { eventSentence } from '../src/domain/events'
import { fhirFileName, fhirJsonText, isFhirBundle, nameSlug } from '../src/domain/fhirDownload'
import { daysFromToday, endOfDay, formatDay, linesToList, today } from '../src/domain/format'
import { reportPreview } from '../src/domain/reportPreview'
import { schoolsOf } from '../src/domain/schools'
import type { CardFieldsFragment } from '../src/gql/graphql'

const card: CardFieldsFragment = {
  childId: 'child-1',
  version: 2,
  updatedAt: '2026-03-01T10:00:00+00:00',
  updatedBy: 'dr-house',
  bloodType: 'A+',
  allergies: ['peanuts'],
  chronicConditions: ['asthma'],
  vaccinations: [{ vaccine: 'MMR', date: '2020-05-01', dose: 1 }],
  examinations: [
    { date: '2025-09-01', doctorUid: 'dr-house', heightCm: 120, weightKg: 22.5, findings: 'healthy' },
  ],
  healthGroup: 2,
  physicalEducationGroup: 'PREPARATORY',
  notes: 'Inhaler at home.',
}

describe('describeCardChange', () => {
  it('names what each version added, removed and changed', () => {
    const next = {
      ...card,
      version: 3,
      allergies: ['latex'],
      vaccinations: [...card.vaccinations, { vaccine: 'DTaP', date: '2021-01-10', dose: 2 }],
      healthGroup: 1,
      notes: 'Changed.',
    }
    expect(describeCardChange(card, next)).toEqual([
      'Allergies: added latex; removed peanuts',
      'Vaccinations: added DTaP dose 2 (2021-01-10)',
      'Health group: 2 → 1',
      'Notes changed',
    ])
  })

  it('calls the first version the creation and an unchanged save what it is', () => {
    expect(describeCardChange(null, card)).toEqual(['Card created.'])
    expect(describeCardChange(card, { ...card, version: 3 })).toEqual(['Saved without changes.'])
  })
})

describe('patchOf', () => {
  it('is empty for an untouched form, whatever the list formatting', () => {
    expect(patchOf(card, draftOf(card))).toEqual({})
  })

  it('carries only changed fields, clears emptied ones with null, keeps exam authors', () => {
    const draft = draftOf(card)
    draft.chronicConditions = ''
    draft.notes = '   '
    draft.physicalEducationGroup = 'MAIN'
    draft.examinations.push({ date: '2026-02-01', doctorUid: null, heightCm: '121.5', weightKg: '', findings: '' })
    expect(patchOf(card, draft)).toEqual({
      chronicConditions: [],
      notes: null,
      physicalEducationGroup: 'MAIN',
      examinations: [
        { date: '2025-09-01', doctorUid: 'dr-house', heightCm: 120, weightKg: 22.5, findings: 'healthy' },
        { date: '2026-02-01', doctorUid: null, heightCm: 121.5, weightKg: null, findings: null },
      ],
    })
  })
})

describe('reportPreview', () => {
  it('holds exactly what the report contract copies: no notes, examinations or blood type', () => {
    const preview = reportPreview('Mia Martin', card, '  Fit for school.  ')
    expect(preview).toEqual({
      childName: 'Mia Martin',
      healthGroup: 2,
      physicalEducationGroup: 'PREPARATORY',
      allergies: ['peanuts'],
      chronicConditions: ['asthma'],
      vaccinations: [{ vaccine: 'MMR', date: '2020-05-01', dose: 1 }],
      conclusion: 'Fit for school.',
    })
  })
})

describe('schoolsOf', () => {
  it('reads the schools off the report channel, leaving out medical channel members', () => {
    const channels = [
      { name: 'medical', members: ['hospital', 'parents'] },
      { name: 'report', members: ['hospital', 'parents', 'school-b', 'school-a'] },
    ]
    expect(schoolsOf(channels)).toEqual(['school-a', 'school-b'])
    expect(schoolsOf([])).toEqual([])
  })
})

describe('eventSentence', () => {
  it('speaks to the role that sees the event', () => {
    expect(eventSentence('ReportReady', 'PARENT')).toBe('A health report is ready for your approval.')
    expect(eventSentence('ReportReady', 'DOCTOR')).toBe('A health report is ready.')
    expect(eventSentence('SomethingNew', 'SCHOOL')).toBe('Something changed on the ledger.')
  })

  it('tells the party who loses access that a consent ended', () => {
    expect(eventSentence('AgreementEnded', 'DOCTOR')).toBe(
      'An agreement ended: you can no longer read or edit that child’s card.',
    )
    expect(eventSentence('EmergencyAccessEnded', 'DOCTOR')).toBe(
      'Your emergency access to a child’s card ended: you can no longer read it.',
    )
    expect(eventSentence('ReportPermissionEnded', 'SCHOOL')).toBe(
      'Your school’s permission to read a health report ended.',
    )
  })

  it('tells the invited parent to accept an offer, and the guardians that it was accepted', () => {
    expect(eventSentence('GuardianshipOffered', 'PARENT')).toBe(
      'You were offered guardianship of a child: accept it to see the child.',
    )
    expect(eventSentence('GuardianshipAccepted', 'PARENT')).toBe(
      'A parent accepted guardianship of a child and is now a guardian.',
    )
  })

  it('tells a guardian that a child’s records were erased for everyone', () => {
    expect(eventSentence('ChildErased', 'PARENT')).toBe(
      'A guardian erased a child’s records: nobody, you included, can read them again.',
    )
    expect(eventSentence('ChildErased', 'DOCTOR')).toBe(
      'A child’s records were erased: nobody can read them again.',
    )
  })
})

describe('access log', () => {
  it('says who erased the child’s records, a guardian or the operator', () => {
    const erased = { what: 'CHILD', version: null, outcome: 'ERASED' } as const
    expect(accessSentence({ ...erased, purpose: 'GUARDIAN' })).toBe(
      'erased the child’s records as a guardian: nobody can read them again',
    )
    expect(accessSentence({ ...erased, purpose: 'ADMINISTRATION' })).toBe(
      'erased the child’s records for administration: nobody can read them again',
    )
  })

  it('shows an erasure recorded on several channels once, with every block, and leaves reads alone', () => {
    const read = (blockNumber: number) => ({ outcome: 'PERMITTED', blockNumber }) as const
    const erased = (blockNumber: number) => ({ outcome: 'ERASED', blockNumber }) as const
    expect(mergeErasures([erased(87), erased(22), read(21), read(20)])).toEqual([
      { outcome: 'ERASED', blockNumber: 87, blocks: [22, 87] },
      { outcome: 'PERMITTED', blockNumber: 21, blocks: [21] },
      { outcome: 'PERMITTED', blockNumber: 20, blocks: [20] },
    ])
    expect(mergeErasures([read(3)])).toEqual([{ outcome: 'PERMITTED', blockNumber: 3, blocks: [3] }])
    expect([blocksText([5]), blocksText([22, 87]), blocksText([1, 2, 3])]).toEqual([
      'block 5',
      'blocks 22 and 87',
      'blocks 1, 2 and 3',
    ])
  })
})

describe('format', () => {
  it('turns a textarea into a list and knows today in local time', () => {
    expect(linesToList(' a \n\n b\n')).toEqual(['a', 'b'])
    expect(today(new Date(2026, 0, 31, 23, 30))).toBe('2026-01-31')
  })

  it('makes a picked date an end at the last second of that day, in local time', () => {
    const end = new Date(endOfDay('2026-06-30'))
    expect([end.getFullYear(), end.getMonth() + 1, end.getDate()]).toEqual([2026, 6, 30])
    expect([end.getHours(), end.getMinutes(), end.getSeconds()]).toEqual([23, 59, 59])
    expect(endOfDay('2026-06-30')).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/)
  })

  it('writes the day of an instant in the local time zone, and leaves what is no instant alone', () => {
    const instant = new Date(2026, 2, 7, 23, 30).toISOString()
    expect(formatDay(instant)).toBe(new Date(2026, 2, 7).toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' }))
    expect(formatDay(instant)).toContain('2026')
    expect(formatDay('not a time')).toBe('not a time')
  })

  it('counts days from today across month and year ends', () => {
    expect(daysFromToday(90, new Date(2026, 10, 15, 8))).toBe('2027-02-13')
    expect(daysFromToday(1, new Date(2026, 0, 31, 23, 30))).toBe('2026-02-01')
  })
})

describe('emergency access', () => {
  it('asks for a reason of 20 characters or more, counted as people count them', () => {
    expect(reasonProblem('  Fell over.  ')).toBe(
      'Give a reason of at least 20 characters (now 10): the parents read it.',
    )
    expect(reasonProblem('Anaphylaxis, suspected peanuts')).toBeNull()
    // Nineteen characters, one of them outside the 16-bit range, are still too few.
    expect(reasonProblem('🚑 Unconscious child')).toBe(
      'Give a reason of at least 20 characters (now 19): the parents read it.',
    )
  })

  it('is open until it is ended or its time runs out', () => {
    const now = Date.parse('2026-03-01T10:00:00Z')
    expect(isOpen({ endedAt: null, validUntil: '2026-03-01T10:00:01Z' }, now)).toBe(true)
    expect(isOpen({ endedAt: null, validUntil: '2026-03-01T10:00:00Z' }, now)).toBe(false)
    expect(isOpen({ endedAt: '2026-03-01T09:30:00Z', validUntil: '2026-03-01T11:00:00Z' }, now)).toBe(false)
  })
})

describe('the FHIR record’s file', () => {
  it('is named after the child and today, in the user’s time zone', () => {
    expect(fhirFileName('Mia Martin', new Date(2026, 2, 7, 23, 30))).toBe('mia-martin-2026-03-07.fhir.json')
    expect(fhirFileName('Mia Martin', new Date(2026, 11, 31, 0, 5))).toBe('mia-martin-2026-12-31.fhir.json')
  })

  it('makes any name a file name part: accents dropped, other scripts kept, separators one hyphen', () => {
    expect(nameSlug('  Mia \t Martin  ')).toBe('mia-martin')
    expect(nameSlug('Zoë Saint-Éloi')).toBe('zoe-saint-eloi')
    expect(nameSlug("O'Brien, Seán Jr.")).toBe('o-brien-sean-jr')
    expect(nameSlug('Анна Петрова')).toBe('анна-петрова')
    expect(nameSlug('李小龙 2')).toBe('李小龙-2')
    expect(nameSlug('a/b\\c:d*e?f"g<h>i|j')).toBe('a-b-c-d-e-f-g-h-i-j')
    expect(nameSlug('../../etc')).toBe('etc')
    expect(nameSlug('!!!')).toBe('child')
    expect(nameSlug('')).toBe('child')
  })

  it('keeps a long name to 60 characters, never ending in a hyphen or splitting a character', () => {
    expect(nameSlug('a'.repeat(59) + ' bc')).toBe('a'.repeat(59))
    expect(nameSlug('x'.repeat(80))).toHaveLength(60)
    expect(Array.from(nameSlug('𝒜'.repeat(70)))).toHaveLength(60)
  })

  it('holds the Bundle as indented JSON that reads back to the same value', () => {
    const bundle = {
      resourceType: 'Bundle' as const,
      type: 'searchset',
      entry: [{ fullUrl: 'https://h.test/fhir/Patient/child-1', resource: { resourceType: 'Patient', id: 'child-1', name: [{ text: 'Zoë' }] } }],
    }
    const text = fhirJsonText(bundle)
    expect(JSON.parse(text)).toEqual(bundle)
    expect(text.split('\n').slice(0, 3)).toEqual(['{', '  "resourceType": "Bundle",', '  "type": "searchset",'])
    expect(text.endsWith('}\n')).toBe(true)
  })

  it('is written only from a Bundle', () => {
    expect(isFhirBundle({ resourceType: 'Bundle', entry: [] })).toBe(true)
    for (const other of [null, undefined, 'Bundle', [], { resourceType: 'OperationOutcome' }, {}]) {
      expect(isFhirBundle(other), JSON.stringify(other)).toBe(false)
    }
  })
})
