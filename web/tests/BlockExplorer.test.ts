import urql from '@urql/vue'
import { mount } from '@vue/test-utils'
import { describe, expect, it } from 'vitest'
import BlockExplorer from '../src/components/BlockExplorer.vue'
import { fakeApi, page, settle } from './fakeApi'

const hidden = { txId: null, function: null, creator: null, creatorMsp: null, writeSetHash: null }

/** The newest two blocks of `medical` as hospital-admin sees them: only its own transaction
 * readable; older blocks follow after the cursor of block 11. */
function ledger() {
  return fakeApi(() => ({
    data: {
      blocks: page(
        [
          {
            number: 12,
            hash: 'bb12',
            timestamp: '2026-03-01T10:01:00+00:00',
            transactionCount: 4,
            transactions: [0, 1, 2, 3].map((index) => ({
              ...hidden,
              index,
              redacted: true,
              contract: 'medical',
              validation: index === 3 ? 'MVCC_READ_CONFLICT' : 'VALID',
            })),
          },
          {
            number: 11,
            hash: 'aa11',
            timestamp: '2026-03-01T10:00:00+00:00',
            transactionCount: 1,
            transactions: [
              {
                index: 0, redacted: false, txId: 'tx-own', contract: 'medical', function: 'registerChild',
                creator: 'hospital-admin', creatorMsp: 'HospitalMSP', validation: 'VALID', writeSetHash: 'c0ffee',
              },
            ],
          },
        ],
        'after-11',
      ),
    },
  }))
}

describe('BlockExplorer', () => {
  it('shows the newest blocks with their transaction count, and redacted rows as hidden', async () => {
    const api = ledger()
    const wrapper = mount(BlockExplorer, {
      props: { channel: 'medical', height: 13 },
      global: { plugins: [[urql, api.client]] },
    })
    await settle()
    expect(api.sent).toEqual([
      { name: 'Blocks', variables: { channel: 'medical', first: 10, after: null } },
    ])
    const blocks = wrapper.findAll('[data-test="block"]')
    expect(blocks.map((b) => b.find('strong').text())).toEqual(['Block 12', 'Block 11'])
    expect(wrapper.find('.hint').text()).toMatch(/^Blocks 11–12 of 13, newest first\./)
    expect(blocks[0]!.find('[data-test="transaction-count"]').text()).toBe(
      '4 transactions, 4 hidden from you',
    )
    expect(blocks[1]!.find('[data-test="transaction-count"]').text()).toBe('1 transaction')

    const rows = blocks[0]!.findAll('[data-test="transaction"]').map((row) => row.text())
    expect(rows[3]).toMatch(
      /^Transaction 3: hidden — you cannot read its records\.\s+Contract medical,\s+not applied/,
    )
    expect(rows[0]).toMatch(/Transaction 0: hidden .* valid$/)
    for (const row of rows) expect(row).not.toMatch(/null|undefined/)

    const own = blocks[1]!.find('[data-test="transaction"]').text()
    expect(own).toMatch(/^Transaction 0: medical registerChild by hospital-admin \(HospitalMSP\)/)
    expect(own).toContain('tx tx-own')
  })

  it('pages to older blocks and back to the newest', async () => {
    const api = ledger()
    const wrapper = mount(BlockExplorer, {
      props: { channel: 'medical', height: 13 },
      global: { plugins: [[urql, api.client]] },
    })
    await settle()
    await wrapper.find('button').trigger('click')
    await settle()
    expect(api.sent.at(-1)?.variables).toEqual({ channel: 'medical', first: 10, after: 'after-11' })
    const newer = wrapper.findAll('button').find((b) => b.text().startsWith('Newer'))
    await newer!.trigger('click')
    await settle()
    expect(api.sent.at(-1)?.variables).toEqual({ channel: 'medical', first: 10, after: null })
  })
})
