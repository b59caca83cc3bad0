import urql from '@urql/vue'
import { mount } from '@vue/test-utils'
import { describe, expect, it } from 'vitest'
import AdminHome from '../src/views/AdminHome.vue'
import { fakeApi, page, settle } from './fakeApi'

function open(answerFull: 'intact' | 'forbidden') {
  const api = fakeApi((name, variables) => {
    if (name === 'Channels') {
      return { data: { channels: [{ name: 'medical', members: ['hospital', 'parents'], height: 143, tipHash: 'ab12' }] } }
    }
    if (name === 'VerifyChannel') {
      if (variables.full && answerFull === 'forbidden') {
        return { code: 'FORBIDDEN', message: 'Only administrators can have a chain verified from block 0.' }
      }
      return { data: { verifyChannel: { channel: 'medical', ok: true, height: 143, firstBadBlock: null, reason: null } } }
    }
    if (name === 'Blocks') {
      const newest = Array.from({ length: 10 }, (_, i) => ({
        number: 142 - i, hash: `hash-${142 - i}`, timestamp: '2026-03-01T10:00:00+00:00', transactionCount: 0, transactions: [],
      }))
      return { data: { blocks: page(newest, 'after-133') } }
    }
    throw new Error(`unexpected ${name}`)
  })
  const wrapper = mount(AdminHome, { global: { plugins: [[urql, api.client]] } })
  const button = (label: string) => wrapper.findAll('button').find((b) => b.text() === label)!
  return { api, wrapper, button }
}

describe('AdminHome', () => {
  it('verifies quickly by default and from block 0 on a full re-verification', async () => {
    const { api, wrapper, button } = open('intact')
    await settle()
    await button('Verify medical').trigger('click')
    await settle()
    expect(wrapper.find('[role="status"]').text()).toBe(
      'Intact (143 blocks): the blocks added since the last check are sound.',
    )
    await button('Full re-verification of medical').trigger('click')
    await settle()
    expect(wrapper.find('[role="status"]').text()).toBe(
      'Intact: all 143 blocks rechecked from block 0 and the state replayed; none damaged.',
    )
    expect(api.sent.filter((s) => s.name === 'VerifyChannel').map((s) => s.variables)).toEqual([
      { channel: 'medical', full: false },
      { channel: 'medical', full: true },
    ])
  })

  it('says so when the server refuses a full re-verification', async () => {
    const { wrapper, button } = open('forbidden')
    await settle()
    await button('Full re-verification of medical').trigger('click')
    await settle()
    expect(wrapper.find('[role="alert"]').text()).toBe(
      'You are not allowed to do this. Only administrators can have a chain verified from block 0.',
    )
    expect(wrapper.find('[role="status"]').exists()).toBe(false)
  })

  it('opens the block explorer of a channel', async () => {
    const { api, wrapper, button } = open('intact')
    await settle()
    await button('Show blocks of medical').trigger('click')
    await settle()
    expect(button('Hide blocks of medical').attributes('aria-expanded')).toBe('true')
    expect(api.sent.at(-1)).toEqual({
      name: 'Blocks',
      variables: { channel: 'medical', first: 10, after: null },
    })
    expect(wrapper.text()).toContain('Blocks 133–142 of 143, newest first.')
  })
})
