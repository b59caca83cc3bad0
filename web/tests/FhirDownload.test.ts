import urql from '@urql/vue'
import { mount } from '@vue/test-utils'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { today } from '../src/domain/format'
import FhirDownload from '../src/views/parent/FhirDownload.vue'
import { fakeApi, settle } from './fakeApi'
import type { Answer } from './fakeApi'

const mia = { id: 'child-1', fullName: 'Mia Martin' }
const bundle = {
  resourceType: 'Bundle',
  type: 'searchset',
  total: 1,
  entry: [
    {
      fullUrl: 'https://healthledger.test/fhir/Patient/child-1',
      resource: { resourceType: 'Patient', id: 'child-1', name: [{ text: 'Mia Martin' }] },
      search: { mode: 'match' },
    },
  ],
}

/** What the page handed the browser to save: each Blob made a URL of, and each link clicked. */
interface Saved {
  blobs: Blob[]
  links: { href: string; download: string; inDocument: boolean }[]
  revoked: string[]
}

let saved: Saved

beforeEach(() => {
  saved = { blobs: [], links: [], revoked: [] }
  // happy-dom's object URLs are not what is tested; which Blob became which URL is.
  vi.spyOn(URL, 'createObjectURL').mockImplementation((blob) => {
    saved.blobs.push(blob as Blob)
    return `blob:https://healthledger.test/${saved.blobs.length}`
  })
  vi.spyOn(URL, 'revokeObjectURL').mockImplementation((url) => void saved.revoked.push(url))
  vi.spyOn(HTMLAnchorElement.prototype, 'click').mockImplementation(function (this: HTMLAnchorElement) {
    saved.links.push({ href: this.href, download: this.download, inDocument: this.isConnected })
  })
})

afterEach(() => {
  vi.restoreAllMocks()
})

function open(answer: (variables: Record<string, unknown>) => Answer | Promise<Answer>) {
  const api = fakeApi((name, variables) => {
    if (name !== 'ChildFhirRecord') throw new Error(`unexpected ${name}`)
    return answer(variables)
  })
  const wrapper = mount(FhirDownload, {
    props: { child: mia },
    global: { plugins: [[urql, api.client]] },
    attachTo: document.body,
  })
  return { api, wrapper, button: wrapper.find<HTMLButtonElement>('[data-test="fhir-download"]') }
}

describe('FhirDownload', () => {
  it('asks nothing until asked, then saves the Bundle as a pretty-printed FHIR JSON file named after the child and today', async () => {
    const { api, wrapper, button } = open(() => ({ data: { child: { id: 'child-1', fhir: bundle } } }))
    await settle()
    expect(api.sent).toEqual([])
    expect(wrapper.text()).toContain('HL7 FHIR R4, the format other health systems read')
    expect(button.text()).toBe('Download FHIR record')

    await button.trigger('click')
    await settle()
    expect(api.sent).toEqual([{ name: 'ChildFhirRecord', variables: { id: 'child-1' } }])
    const fileName = `mia-martin-${today()}.fhir.json`
    expect(saved.links).toEqual([
      { href: 'blob:https://healthledger.test/1', download: fileName, inDocument: true },
    ])
    expect(document.querySelector('a[download]')).toBeNull()
    const [blob] = saved.blobs
    expect(blob!.type).toBe('application/fhir+json')
    const text = await blob!.text()
    expect(text).toBe(`${JSON.stringify(bundle, null, 2)}\n`)
    expect(JSON.parse(text)).toEqual(bundle)
    expect(wrapper.find('[role="status"]').text()).toBe(`Saved as ${fileName}.`)
    expect(wrapper.find('[role="alert"]').exists()).toBe(false)
    // The browser may still be reading the file: its URL lives until the next one or the panel goes.
    expect(saved.revoked).toEqual([])
    wrapper.unmount()
    expect(saved.revoked).toEqual(['blob:https://healthledger.test/1'])
  })

  it('asks the server again for each download, releasing the previous file', async () => {
    const { api, wrapper, button } = open(() => ({ data: { child: { id: 'child-1', fhir: bundle } } }))
    await button.trigger('click')
    await settle()
    await button.trigger('click')
    await settle()
    expect(api.sent.map((s) => s.name)).toEqual(['ChildFhirRecord', 'ChildFhirRecord'])
    expect(saved.links.map((link) => link.href)).toEqual([
      'blob:https://healthledger.test/1',
      'blob:https://healthledger.test/2',
    ])
    expect(saved.revoked).toEqual(['blob:https://healthledger.test/1'])
    wrapper.unmount()
  })

  it('says it is busy while the server prepares the record, and takes no second click then', async () => {
    let answer: (reply: Answer) => void = () => {}
    const { api, wrapper, button } = open(() => new Promise<Answer>((resolve) => (answer = resolve)))
    await button.trigger('click')
    await settle()
    expect(button.text()).toBe('Preparing the record…')
    expect(button.element.disabled).toBe(true)
    expect(button.attributes('aria-busy')).toBe('true')
    await button.trigger('click')
    expect(api.sent).toHaveLength(1)
    expect(saved.links).toEqual([])

    answer({ data: { child: { id: 'child-1', fhir: bundle } } })
    await settle()
    expect(button.text()).toBe('Download FHIR record')
    expect(button.element.disabled).toBe(false)
    expect(button.attributes('aria-busy')).toBe('false')
    expect(saved.links).toHaveLength(1)
    wrapper.unmount()
  })

  it('shows the server’s refusal as a sentence and saves nothing', async () => {
    let refuse = true
    const { wrapper, button } = open(() =>
      refuse
        ? { code: 'FORBIDDEN', message: 'Only the child’s guardians can export its record.' }
        : { data: { child: { id: 'child-1', fhir: bundle } } },
    )
    await button.trigger('click')
    await settle()
    expect(wrapper.find('[role="alert"]').text()).toBe(
      'You are not allowed to do this. Only the child’s guardians can export its record.',
    )
    expect(saved.blobs).toEqual([])
    expect(saved.links).toEqual([])
    expect(wrapper.find('[role="status"]').exists()).toBe(false)
    expect(button.element.disabled).toBe(false)

    // A later download that works clears the refusal.
    refuse = false
    await button.trigger('click')
    await settle()
    expect(wrapper.find('[role="alert"]').exists()).toBe(false)
    expect(saved.links).toHaveLength(1)
    wrapper.unmount()
  })

  it('saves nothing when the answer is no Bundle, and says so', async () => {
    const { wrapper, button } = open(() => ({
      data: { child: { id: 'child-1', fhir: { resourceType: 'OperationOutcome', issue: [] } } },
    }))
    await button.trigger('click')
    await settle()
    expect(wrapper.find('[role="alert"]').text()).toBe(
      'The server did not send a FHIR record, so nothing was saved.',
    )
    expect(saved.blobs).toEqual([])
    wrapper.unmount()
  })
})
