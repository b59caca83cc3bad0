// How dates, groups and roles read on screen.
import type { PeGroup, Role } from '../gql/graphql'

export const PE_GROUPS: PeGroup[] = ['MAIN', 'PREPARATORY', 'SPECIAL', 'EXEMPT']

const PE_LABELS: Record<PeGroup, string> = {
  MAIN: 'Main',
  PREPARATORY: 'Preparatory',
  SPECIAL: 'Special',
  EXEMPT: 'Exempt',
}

const ROLE_LABELS: Record<Role, string> = {
  PARENT: 'Parent',
  DOCTOR: 'Pediatrician',
  SCHOOL: 'School staff',
  ADMIN: 'Administrator',
  SERVER: 'The server (an operator)',
}

export function peGroupLabel(group: PeGroup | null | undefined): string {
  return group ? PE_LABELS[group] : 'not set'
}

export function healthGroupLabel(group: number | null | undefined): string {
  return group == null ? 'not set' : String(group)
}

export function roleLabel(role: Role): string {
  return ROLE_LABELS[role]
}

/** A calendar date (YYYY-MM-DD) as written in the user's locale, without time-zone shifts. */
export function formatDate(iso: string): string {
  const [year, month, day] = iso.split('-').map(Number)
  if (!year || !month || !day) return iso
  return new Date(Date.UTC(year, month - 1, day)).toLocaleDateString(undefined, {
    timeZone: 'UTC',
    year: 'numeric',
    month: 'short',
    day: 'numeric',
  })
}

export function formatDateTime(iso: string): string {
  const when = new Date(iso)
  if (Number.isNaN(when.getTime())) return iso
  return when.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' })
}

/** The calendar day of an instant, in the user's time zone and locale: "Mar 7, 2026". */
export function formatDay(iso: string): string {
  const when = new Date(iso)
  if (Number.isNaN(when.getTime())) return iso
  return when.toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' })
}

/** Today as YYYY-MM-DD in the user's time zone (the latest date a form accepts). */
export function today(now: Date = new Date()): string {
  const local = new Date(now.getTime() - now.getTimezoneOffset() * 60_000)
  return local.toISOString().slice(0, 10)
}

/** Lines of a textarea as a list: trimmed, blank lines dropped. */
export function linesToList(text: string): string[] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0)
}

/** The end of a calendar date (YYYY-MM-DD) in the user's time zone, as an instant for the API:
 * what "until 30 June" means to the person who picks 30 June. */
export function endOfDay(date: string): string {
  const [year, month, day] = date.split('-').map(Number)
  return new Date(year!, month! - 1, day!, 23, 59, 59).toISOString()
}

/** The calendar date `days` after today in the user's time zone, as YYYY-MM-DD. */
export function daysFromToday(days: number, now: Date = new Date()): string {
  const later = new Date(now.getFullYear(), now.getMonth(), now.getDate() + days, 12)
  return today(later)
}
