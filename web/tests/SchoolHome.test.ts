import urql from '@urql/vue'
import { mount } from '@vue/test-utils'
import { describe, expect, it } from 'vitest'
import type { ReportsQuery } from '../src/gql/graphql'
import SchoolHome from '../src/views/school/SchoolHome.vue'
import { fakeApi, settle } from './fakeApi'

type Report = ReportsQuery['reports'][number]

const report = (id: string, changes: Partial<Report>): Report => ({
  id,
  childId: 'child-1',
  reportRequestId: 'request-1',
  status: 'READY',
  authorUid: 'dr-house',
  createdAt: '2026-03-01T10:00:00+00:00',
  permittedSchools: [],
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
          admissionRequests: [
            { id: 'adm-1', childId: 'child-1', childName: 'Mia Martin', school: 'school-a', status: 'ACCEPTED', reason: null, createdAt: '2026-02-01T10:00:00+00:00' },
          ],
        },
      }
    }
    if (name === 'ReportRequests') return { data: { reportRequests: [] } }
    if (name === 'Reports') return { data: { reports } }
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
      report('report-approved', { status: 'APPROVED', permittedSchools: ['school-a'] }),
    ])
    await settle()
    const [ready, approved] = wrapper.findAll('article')
    expect(ready!.find('[data-test="report-status"]').text()).toBe('not approved for your school')
    expect(ready!.find('[data-test="report-locked"]').exists()).toBe(true)
    expect(approved!.find('[data-test="report-status"]').text()).toBe('approved for your school')
    expect(approved!.find('[data-test="conclusion"]').text()).toBe('Fit.')
    expect(wrapper.text()).not.toMatch(/other schools?/i)
  })
})
