// The card editor's form state, and the patch that turns a loaded card into the edited one.
import type { CardFieldsFragment, MedicalCardPatch, PeGroup } from '../gql/graphql'
import { linesToList } from './format'

export interface VaccinationDraft {
  vaccine: string
  date: string
  dose: number
}

export interface ExaminationDraft {
  date: string
  doctorUid: string | null
  heightCm: string
  weightKg: string
  findings: string
}

export interface CardDraft {
  bloodType: string
  allergies: string
  chronicConditions: string
  vaccinations: VaccinationDraft[]
  examinations: ExaminationDraft[]
  healthGroup: string
  physicalEducationGroup: PeGroup | ''
  notes: string
}

export const BLOOD_TYPES = ['O+', 'O-', 'A+', 'A-', 'B+', 'B-', 'AB+', 'AB-']

export function draftOf(card: CardFieldsFragment): CardDraft {
  return {
    bloodType: card.bloodType ?? '',
    allergies: card.allergies.join('\n'),
    chronicConditions: card.chronicConditions.join('\n'),
    vaccinations: card.vaccinations.map((v) => ({ ...v })),
    examinations: card.examinations.map((e) => ({
      date: e.date,
      doctorUid: e.doctorUid,
      heightCm: e.heightCm == null ? '' : String(e.heightCm),
      weightKg: e.weightKg == null ? '' : String(e.weightKg),
      findings: e.findings ?? '',
    })),
    healthGroup: card.healthGroup == null ? '' : String(card.healthGroup),
    physicalEducationGroup: card.physicalEducationGroup ?? '',
    notes: card.notes ?? '',
  }
}

const optionalNumber = (text: string): number | null => (text.trim() === '' ? null : Number(text))
const optionalText = (text: string): string | null => (text.trim() === '' ? null : text.trim())
const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b)

/**
 * Only the fields the draft changes relative to `loaded` (the contract leaves omitted
 * fields as they are; an explicit null clears one). Empty when nothing changed.
 */
export function patchOf(loaded: CardFieldsFragment, draft: CardDraft): MedicalCardPatch {
  const edited = {
    bloodType: optionalText(draft.bloodType),
    allergies: linesToList(draft.allergies),
    chronicConditions: linesToList(draft.chronicConditions),
    vaccinations: draft.vaccinations.map((v) => ({
      vaccine: v.vaccine.trim(),
      date: v.date,
      dose: Number(v.dose),
    })),
    examinations: draft.examinations.map((e) => ({
      date: e.date,
      doctorUid: e.doctorUid,
      heightCm: optionalNumber(e.heightCm),
      weightKg: optionalNumber(e.weightKg),
      findings: optionalText(e.findings),
    })),
    healthGroup: optionalNumber(draft.healthGroup),
    physicalEducationGroup: draft.physicalEducationGroup || null,
    notes: optionalText(draft.notes),
  }
  const patch: MedicalCardPatch = {}
  for (const key of Object.keys(edited) as (keyof typeof edited)[]) {
    if (!same(edited[key], loaded[key])) Object.assign(patch, { [key]: edited[key] })
  }
  return patch
}
