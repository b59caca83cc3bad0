import urql from '@urql/vue'
import { mount } from '@vue/test-utils'
import { describe, expect, it } from 'vitest'
import type { NodeOf } from '../src/api/paging'
import type { ReportsQuery } from '../src/gql/graphql'
import SchoolHome from '../src/views/school/SchoolHome.vue'
import { fakeApi, page, settle } from './fakeApi'

type Report = NodeOf<ReportsQuery['reports']>

const report = (id: string, changes: Partial<Report>): Report => ({
  id,
  txId: 'tx-report',
  childId: 'child-1',
  reportRequestId: 'request-1',
  status: 'READY',
  authorUid: 'dr-house',
  createdAt: '2026-03-01T10:00:00+00:00',
  permittedSchools: [],
  permissions: [],
  cardVersion: 3,
  cardHash: 'abc',
  ...changes,
})

/** school-a's view: the report's status is its own, READY until the parents permit school-a. */
function open(reports: Report[]) {
  const api = fakeApi((name, variables) => {
    if (name === 'AdmissionRequests') {
      return {
        data: {
          admissionRequests: page([
            { id: 'adm-1', childId: 'child-1', childName: 'Mia Martin', school: 'school-a', status: 'ACCEPTED', reason: null, createdAt: '2026-02-01T10:00:00+00:00' },
          ]),
        },
      }
    }
    if (name === 'ReportRequests') return { data: { reportRequests: page([]) } }
    if (name === 'Reports') return { data: { reports: page(reports) } }
    if (name === 'ReportContent' && variables.id === 'report-approved') {
      return {
        data: {
          report: {
            id: variables.id, status: 'APPROVED',
            content: { childName: 'Mia Martin', healthGroup: 2, physicalEducationGroup: 'MAIN', allergies: [], chronicConditions: [], conclusion: 'Fit.', vaccinations: [] },
          },
        },
      }
    }
    return { code: 'FORBIDDEN', message: 'The parents have not approved this report for your school.' }
  })
  return mount(SchoolHome, { props: { school: 'school-a' }, global: { plugins: [[urql, api.client]] } })
}

describe('SchoolHome', () => {
  it('reads each report’s status as its own school’s: approved exactly while permitted', async () => {
    const wrapper = open([
      report('report-ready', {}),
      report('report-approved', {
        status: 'APPROVED',
        permittedSchools: ['school-a'],
        permissions: [
          { school: 'school-a', grantedAt: '2026-03-02T10:00:00+00:00', validUntil: '2026-05-31T21:59:59+00:00', status: 'ACTIVE' },
        ],
      }),
    ])
    await settle()
    const [ready, approved] = wrapper.findAll('article')
    expect(ready!.find('[data-test="report-status"]').text()).toBe('not approved for your school')
    expect(ready!.find('[data-test="report-locked"]').exists()).toBe(true)
    expect(approved!.find('[data-test="report-status"]').text()).toBe('approved for your school')
    expect(approved!.find('p').text()).toMatch(/approved for your school\s+until .*2026/)
    expect(ready!.find('p').text()).not.toContain('until')
    expect(approved!.find('[data-test="conclusion"]').text()).toBe('Fit.')
    expect(wrapper.text()).not.toMatch(/other schools?/i)
    // A school is shown its own view, not the report's stored record: nothing to verify.
    expect(wrapper.find('button[aria-label="Verify this report"]').exists()).toBe(false)
  })

  it('shows older admission requests with the report requests of their time', async () => {
    const admission = (n: number) => ({
      id: `adm-${n}`, childId: `child-${n}`, childName: `Child ${n}`, school: 'school-a',
      status: 'ACCEPTED' as const, reason: null, createdAt: '2026-02-01T10:00:00+00:00',
    })
    const request = (n: number) => ({
      id: `rr-${n}`, admissionRequestId: `adm-${n}`, childId: `child-${n}`, school: 'school-a',
      status: 'PENDING' as const, reportId: null, createdAt: '2026-02-02T10:00:00+00:00',
    })
    const newest = (from: number, after: unknown) => {
      const top = after === null ? from : Number(after) - 1
      return Array.from({ length: Math.min(50, top) }, (_, i) => top - i)
    }
    const api = fakeApi((name, variables) => {
      if (name === 'AdmissionRequests') {
        const numbers = newest(60, variables.after)
        return { data: { admissionRequests: page(numbers.map(admission), numbers.at(-1)! > 1 ? String(numbers.at(-1)) : null) } }
      }
      if (name === 'ReportRequests') {
        const numbers = newest(60, variables.after)
        return { data: { reportRequests: page(numbers.map(request), numbers.at(-1)! > 1 ? String(numbers.at(-1)) : null) } }
      }
      return { data: { reports: page([]) } }
    })
    const wrapper = mount(SchoolHome, { props: { school: 'school-a' }, global: { plugins: [[urql, api.client]] } })
    await settle()
    expect(wrapper.findAll('[data-test="report-request-status"]')).toHaveLength(50)
    await wrapper.find('[data-test="show-more"]').trigger('click')
    await settle()
    expect(api.sent.slice(-2)).toEqual([
      { name: 'AdmissionRequests', variables: { first: 50, after: '11' } },
      { name: 'ReportRequests', variables: { status: null, first: 50, after: '11' } },
    ])
    // Every admission, the oldest too, shows its report request instead of offering a new one.
    expect(wrapper.findAll('[data-test="report-request-status"]')).toHaveLength(60)
    expect(wrapper.text()).not.toContain('Request a health report')
    expect(wrapper.find('[data-test="show-more"]').exists()).toBe(false)
  })
})
