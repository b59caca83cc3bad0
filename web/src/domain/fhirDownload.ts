// A child's record as a FHIR R4 file a parent saves: what the file is called and what it holds.
import { today } from './format'

/** The media type FHIR R4 gives its JSON format. */
export const FHIR_JSON = 'application/fhir+json'

/** Longest name part of the file, so that a long name still leaves the date and the extension. */
const SLUG_LENGTH = 60

/** A FHIR Bundle, as far as the page needs to know it. */
export interface FhirBundle {
  resourceType: 'Bundle'
  [field: string]: unknown
}

export function isFhirBundle(value: unknown): value is FhirBundle {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    (value as { resourceType?: unknown }).resourceType === 'Bundle'
  )
}

/**
 * The child's name as a file name part: lower case, accents dropped, every run of other
 * characters than letters and digits (of any script) one hyphen; "child" when nothing is left.
 */
export function nameSlug(fullName: string): string {
  const slug = fullName
    .normalize('NFKD')
    .replace(/\p{M}/gu, '')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, '-')
    .replace(/^-+|-+$/g, '')
  // Cut by code point, so a letter outside the BMP is never split in two.
  const cut = Array.from(slug).slice(0, SLUG_LENGTH).join('').replace(/-+$/, '')
  return cut || 'child'
}

/** `<name-slug>-<YYYY-MM-DD>.fhir.json`, the date being today in the user's time zone. */
export function fhirFileName(fullName: string, now: Date = new Date()): string {
  return `${nameSlug(fullName)}-${today(now)}.fhir.json`
}

/** The Bundle as the file's text: JSON indented by two spaces, ending with a newline. */
export function fhirJsonText(bundle: FhirBundle): string {
  return `${JSON.stringify(bundle, null, 2)}\n`
}
