import urql from '@urql/vue'
import { mount } from '@vue/test-utils'
import { describe, expect, it } from 'vitest'
import type { NodeOf } from '../src/api/paging'
import { endOfDay } from '../src/domain/format'
import type { ReportsQuery } from '../src/gql/graphql'
import ReportApproval from '../src/views/parent/ReportApproval.vue'
import { fakeApi, settle } from './fakeApi'

type Report = NodeOf<ReportsQuery['reports']>
type Permission = Report['permissions'][number]

const report = (changes: Partial<Report>): Report => ({
  id: 'report-1',
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

const permission = (school: string, status: Permission['status']): Permission => ({
  school,
  grantedAt: '2026-03-02T10:00:00+00:00',
  validUntil: '2026-05-31T21:59:59+00:00',
  status,
})

function open(props: Partial<{ report: Report }>) {
  const api = fakeApi((name, variables) => ({
    data: {
      [name === 'ApproveReport' ? 'approveReport' : 'revokeReportPermission']: {
        id: variables.id, status: 'READY', permittedSchools: [], permissions: [],
      },
    },
  }))
  const wrapper = mount(ReportApproval, {
    props: { report: report({}), schools: ['school-a', 'school-b'], requestingSchool: 'school-a', ...props },
    global: { plugins: [[urql, api.client]] },
  })
  return { api, wrapper }
}

describe('ReportApproval', () => {
  it('says nobody outside the family can read a READY report and preselects the asking school', async () => {
    const { api, wrapper } = open({})
    expect(wrapper.find('[data-test="no-school"]').text()).toBe('No school can read it yet.')
    const boxes = wrapper.findAll('input[type="checkbox"]')
    expect(boxes.map((b) => (b.element as HTMLInputElement).checked)).toEqual([true, false])
    await wrapper.find('form').trigger('submit')
    await settle()
    // No date: the network's default period.
    expect(api.sent).toEqual([
      { name: 'ApproveReport', variables: { id: 'report-1', schools: ['school-a'], validUntil: null } },
    ])
  })

  it('sends the chosen end date as the end of that day', async () => {
    const { api, wrapper } = open({})
    await wrapper.find('input[type="date"]').setValue('2026-06-30')
    await wrapper.find('form').trigger('submit')
    await settle()
    expect(api.sent[0]!.variables.validUntil).toBe(endOfDay('2026-06-30'))
  })

  it('lists each school’s permission with its dates and status, to extend or withdraw', async () => {
    const { api, wrapper } = open({
      report: report({
        status: 'APPROVED',
        permittedSchools: ['school-a'],
        permissions: [permission('school-a', 'ACTIVE'), permission('school-b', 'EXPIRED'), permission('school-c', 'REVOKED')],
      }),
    })
    const [active, expired, revoked] = wrapper.findAll('[data-test="permission"]')
    expect(active!.text()).toContain('school-a — may read it')
    expect(active!.text()).toMatch(/Approved .*2026.*; until .*2026/)
    expect(expired!.text()).toContain('school-b — may no longer read it: the permission ended')
    expect(expired!.text()).toContain('was until')
    expect(revoked!.text()).toContain('school-c — may no longer read it: you withdrew the permission')
    expect(revoked!.find('button').exists()).toBe(false)
    expect(expired!.text()).not.toContain('Withdraw')
    expect(wrapper.find('[data-test="no-school"]').exists()).toBe(false)

    // An ended permission is extended by approving the school again, with the new date.
    await expired!.find('input[type="date"]').setValue('2026-09-01')
    await expired!.find('form').trigger('submit')
    await settle()
    await active!.findAll('button').find((b) => b.text() === 'Withdraw permission for school-a')!.trigger('click')
    await settle()
    expect(api.sent).toEqual([
      { name: 'ApproveReport', variables: { id: 'report-1', schools: ['school-b'], validUntil: endOfDay('2026-09-01') } },
      { name: 'RevokeReportPermission', variables: { id: 'report-1', school: 'school-a' } },
    ])
  })
})
