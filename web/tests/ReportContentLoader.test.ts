import urql from '@urql/vue'
import { mount } from '@vue/test-utils'
import canonicalize from 'canonicalize'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import type { NodeOf } from '../src/api/paging'
import ReportContentLoader from '../src/components/ReportContentLoader.vue'
import type { ReportsQuery } from '../src/gql/graphql'
import { fakeApi, settle, verdict } from './fakeApi'
import { LogSigner } from './logFixtures'

const CONTENT = {
  childName: 'Mia Martin', healthGroup: 2, physicalEducationGroup: 'MAIN', allergies: ['peanuts'],
  chronicConditions: [], conclusion: 'Fit.', vaccinations: [{ vaccine: 'MMR', date: '2020-05-01', dose: 1 }],
}
const LISTED: NodeOf<ReportsQuery['reports']> = {
  id: 'report-1', txId: 'tx-approval', childId: 'child-1', reportRequestId: 'request-1', status: 'APPROVED',
  authorUid: 'dr-house', createdAt: '2026-03-01T10:00:00+00:00', permittedSchools: ['school-a'], cardVersion: 3,
  cardHash: 'abc',
  permissions: [{ school: 'school-a', grantedAt: '2026-03-02T10:00:00+00:00', validUntil: '2026-05-31T21:59:59+00:00', status: 'ACTIVE' }],
}
// The report as the ledger stores it: the listed facts, the permissions' dates and the content.
const { txId: _, status: __, permittedSchools: ___, ...FACTS } = LISTED
const STORED = {
  ...FACTS, author: 'Dr. House', requestingSchool: 'school-a', guardians: ['alice'], cardSalt: 'f'.repeat(64),
  content: CONTENT, createdAt: '2026-03-01T10:00:00.000000Z',
  permissions: [{ school: 'school-a', grantedAt: '2026-03-02T10:00:00.000000Z', validUntil: '2026-05-31T21:59:59.000000Z', revokedAt: null }],
}

function open(canonicalText: string) {
  const api = fakeApi((name) => {
    if (name === 'ReportContent') return { data: { report: { id: 'report-1', status: 'APPROVED', content: CONTENT } } }
    if (name !== 'ReportProof') throw new Error(`unexpected ${name}`)
    // A proof whose record is checked first: what the page shows must be in it.
    const proof = {
      key: 'report/report-1', canonicalText, salt: '0'.repeat(64), commitment: '0'.repeat(64), txHashInputs: '{}',
      inclusion: { leafIndex: 0, treeSize: 1, leafHash: '0'.repeat(64), hashes: [], checkpoint: { origin: 'o', treeSize: 1, rootHash: '0'.repeat(64), note: '' } },
    }
    return { data: { report: { id: 'report-1', proof } } }
  })
  const wrapper = mount(ReportContentLoader, {
    props: { reportId: 'report-1', shown: LISTED },
    global: { plugins: [[urql, api.client]] },
  })
  return { api, wrapper }
}

describe('ReportContentLoader: verifying a report', () => {
  const report = new LogSigner('healthledger/hl-0123456789ab/report')
  beforeEach(() => vi.stubGlobal('fetch', async () => new Response(`${report.verifierKey()}\n`)))
  afterEach(() => {
    vi.unstubAllGlobals()
    localStorage.clear()
  })

  it('checks the facts, the permissions’ dates and the content shown against the record in the log', async () => {
    const { api, wrapper } = open(canonicalize({ ...STORED, content: { ...CONTENT, conclusion: 'Not fit.' } })!)
    await settle()
    await wrapper.get('button[aria-label="Verify this report"]').trigger('click')
    await settle()
    expect(api.sent.at(-1)).toEqual({ name: 'ReportProof', variables: { id: 'report-1' } })
    expect(await verdict(wrapper)).toBe(
      'Not verified: the record in the log does not hold what the page shows (content.conclusion).',
    )
  })

  it('goes on to the next check once the record holds what is shown', async () => {
    const { wrapper } = open(canonicalize(STORED)!)
    await settle()
    await wrapper.get('button[aria-label="Verify this report"]').trigger('click')
    await settle()
    expect(await verdict(wrapper)).toBe(
      'Not verified: the record and its salt do not make the commitment given.',
    )
  })
})
