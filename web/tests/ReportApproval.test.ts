import urql from '@urql/vue'
import { mount } from '@vue/test-utils'
import { describe, expect, it } from 'vitest'
import type { NodeOf } from '../src/api/paging'
import type { ReportsQuery } from '../src/gql/graphql'
import ReportApproval from '../src/views/parent/ReportApproval.vue'
import { fakeApi, settle } from './fakeApi'

type Report = NodeOf<ReportsQuery['reports']>

const report = (changes: Partial<Report>): Report => ({
  id: 'report-1',
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

function open(props: Partial<{ report: ReturnType<typeof report> }>) {
  const api = fakeApi((name, variables) => ({
    data: { [name === 'ApproveReport' ? 'approveReport' : 'revokeReportPermission']: { id: variables.id, status: 'READY', permittedSchools: [] } },
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
    expect(api.sent).toEqual([{ name: 'ApproveReport', variables: { id: 'report-1', schools: ['school-a'] } }])
  })

  it('lists each permitted school with a way to withdraw, and offers no second approval', async () => {
    const { api, wrapper } = open({ report: report({ status: 'APPROVED', permittedSchools: ['school-a'] }) })
    const readers = wrapper.find('[data-test="readers"]').text()
    expect(readers).toContain('school-a')
    expect(readers).not.toContain('school-b')
    expect(wrapper.find('form').exists()).toBe(false)
    await wrapper.find('button').trigger('click')
    await settle()
    expect(api.sent).toEqual([
      { name: 'RevokeReportPermission', variables: { id: 'report-1', school: 'school-a' } },
    ])
  })
})
