import { describe, expect, it } from 'vitest'
import { describeCardChange } from '../src/domain/cardDiff'
import { draftOf, patchOf } from '../src/domain/cardForm'
import { eventSentence } from '../src/domain/events'
import { linesToList, today } from '../src/domain/format'
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

  it('tells the invited parent to accept an offer, and the guardians that it was accepted', () => {
    expect(eventSentence('GuardianshipOffered', 'PARENT')).toBe(
      'You were offered guardianship of a child: accept it to see the child.',
    )
    expect(eventSentence('GuardianshipAccepted', 'PARENT')).toBe(
      'A parent accepted guardianship of a child and is now a guardian.',
    )
  })
})

describe('format', () => {
  it('turns a textarea into a list and knows today in local time', () => {
    expect(linesToList(' a \n\n b\n')).toEqual(['a', 'b'])
    expect(today(new Date(2026, 0, 31, 23, 30))).toBe('2026-01-31')
  })
})
