/// <reference types="node" />
// The five-step story clicked through in headless Chromium by two parents, a pediatrician,
// two schools and an administrator, each in their own browser context presenting their own
// client certificate to a running `healthledger serve`; then a second pediatrician opens
// emergency access to the child, which the parents see, with every read, and end. On the way the
// parent verifies a card version and the report in the log, in the browser, against the log key
// it pins, and downloads the child's record as a FHIR R4 file. Asserts what each person sees;
// saves a screenshot per step, and of every open page when the story fails.
// Then a parent whose certificate is in Chromium's own certificate store, as a person's browser
// holds it, uses the app and GraphiQL with every request to another host blocked. Last, the
// parent erases the child's records by typing its full name: the child is gone for everyone.
//
// Run by tests/test_web_e2e.py (`npm run e2e`, this directory's vitest.config.ts), which sets
// E2E_BASE_URL (https://127.0.0.1:PORT), E2E_NETWORK (the network directory, with
// users/ORG/UID.pem and .key), E2E_OUTPUT (where screenshots go), E2E_CHROMIUM,
// NODE_EXTRA_CA_CERTS=<network>/tls/ca.pem so Playwright's certificate proxy trusts the server,
// and E2E_NSS_HOME and E2E_NSS_UID: a HOME whose NSS database holds that user's .p12 and trusts
// the server's CA, with a Chromium policy that presents the certificate to E2E_BASE_URL; and
// E2E_EMERGENCY_DOCTOR, a hospital doctor enrolled for the emergency, with no agreement.
import { mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { chromium } from 'playwright-core'
import type { Browser, BrowserContext, Locator, Page, ViewportSize } from 'playwright-core'
import { afterAll, assert, beforeAll, test } from 'vitest'

const BASE_URL = required('E2E_BASE_URL')
const NETWORK = required('E2E_NETWORK')
const OUTPUT = required('E2E_OUTPUT')
const CHROMIUM = process.env.E2E_CHROMIUM ?? '/usr/bin/chromium'
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu']
const NSS_HOME = required('E2E_NSS_HOME')
const NSS_UID = required('E2E_NSS_UID')
const EMERGENCY_DOCTOR = required('E2E_EMERGENCY_DOCTOR')
const STEP_TIMEOUT_MS = 20_000

const CHILD = 'Mia Martin'
const CONCLUSION = 'Fit for school. Keep peanuts out of her lunch.'
const EMERGENCY_REASON = 'Brought in unconscious after a fall at school; allergies needed before treatment.'
/** The end date the parent gives the agreement, then the one it is extended to (a day in the
 * years the test runs, far enough ahead). */
const AGREEMENT_ENDS = `${new Date().getFullYear() + 1}-06-30`
const AGREEMENT_EXTENDED = `${new Date().getFullYear() + 2}-06-30`

/** The verifier key line of the channel's log, as the network publishes it (log/CHANNEL.pub). */
function logKey(channel: string): string {
  return readFileSync(join(NETWORK, 'log', `${channel}.pub`), 'utf8').trim()
}

function required(name: string): string {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is not set`)
  return value
}

/** One person's browser context and page; counts navigations to prove updates arrive live. */
class Person {
  loads = 0

  constructor(
    readonly uid: string,
    readonly context: BrowserContext,
    readonly page: Page,
  ) {
    page.on('load', () => (this.loads += 1))
    page.on('pageerror', (error) => console.error(`[${uid}] page error: ${error.message}`))
  }

  static async open(
    browser: Browser,
    uid: string,
    org: string,
    viewport: ViewportSize = { width: 1280, height: 900 },
  ): Promise<Person> {
    const context = await browser.newContext({
      viewport,
      clientCertificates: [
        {
          origin: BASE_URL,
          certPath: join(NETWORK, 'users', org, `${uid}.pem`),
          keyPath: join(NETWORK, 'users', org, `${uid}.key`),
        },
      ],
    })
    return Person.enter(context, uid)
  }

  /** `uid` opens the app in `context`, whose browser presents their certificate. */
  static async enter(context: BrowserContext, uid: string): Promise<Person> {
    context.setDefaultTimeout(STEP_TIMEOUT_MS)
    const page = await context.newPage()
    const person = new Person(uid, context, page)
    await page.goto(BASE_URL + '/')
    await person.sees(uid)
    return person
  }

  /** Waits until `text` is visible somewhere on the page, or within one part of it. */
  async sees(text: string | RegExp, within: Page | Locator = this.page): Promise<void> {
    try {
      await within.getByText(text).first().waitFor({ state: 'visible' })
    } catch (error) {
      throw new Error(`${this.uid} does not see ${text}`, { cause: error })
    }
  }

  /** Asserts `text` is nowhere on the page, not even hidden. */
  async doesNotSee(text: string): Promise<void> {
    const count = await this.page.getByText(text).count()
    assert(count === 0, `${this.uid} sees ${text}, which they must not`)
  }

  async click(name: string | RegExp): Promise<void> {
    await this.page.getByRole('button', { name }).click()
  }

  section(name: string): Locator {
    return this.page.getByRole('region', { name, exact: true })
  }
}

/** What the story reads of the FHIR record a parent downloads. */
interface FhirBundle {
  resourceType: string
  entry: { resource: { resourceType: string; id: string; vaccineCode?: { text?: string } } }[]
}

let shots = 0
/** The whole page, one element, or what fits the window. */
async function screenshot(person: Person, name: string, target?: Locator | 'window'): Promise<void> {
  shots += 1
  const file = join(OUTPUT, `${String(shots).padStart(2, '0')}-${name}.png`)
  if (target === 'window') await person.page.screenshot({ path: file })
  else if (target) await target.screenshot({ path: file })
  else await person.page.screenshot({ path: file, fullPage: true })
  console.log(`   screenshot ${file}`)
}

function step(title: string): void {
  console.log(title)
}

async function story(browser: Browser): Promise<void> {
  const parent = await Person.open(browser, 'alice', 'parents')
  const otherParent = await Person.open(browser, 'bob', 'parents')
  const doctor = await Person.open(browser, 'dr-house', 'hospital')
  const schoolA = await Person.open(browser, 'school-a-office', 'school-a')
  const schoolB = await Person.open(browser, 'school-b-office', 'school-b')
  const people = [parent, otherParent, doctor, schoolA, schoolB]

  const banners: [Person, string, string][] = [
    [parent, 'Parent', 'parents'],
    [otherParent, 'Parent', 'parents'],
    [doctor, 'Pediatrician', 'hospital'],
    [schoolA, 'School staff', 'school-a'],
    [schoolB, 'School staff', 'school-b'],
  ]
  for (const [person, role, org] of banners) {
    const header = person.page.getByRole('banner')
    assert((await header.getByText(role, { exact: true }).count()) === 1, `${person.uid}: role ${role}`)
    assert((await header.getByText(org, { exact: true }).count()) === 1, `${person.uid}: org ${org}`)
  }

  step('1. the parent registers a child, the other parent accepts guardianship; a pediatrician accepts an agreement and edits the card')
  const p = parent.page
  await p.getByLabel('Full name').fill(CHILD)
  await p.getByLabel('Date of birth').fill('2019-04-12')
  await p.getByLabel('Other guardians').fill('bob')
  await parent.sees('Each is offered guardianship and becomes a guardian only after accepting it.')
  await parent.click('Register child')
  await parent.sees(/Version 1, last changed by alice/)
  await parent.sees('Card created.')
  const guardians = parent.section('Guardians')
  await parent.sees('bob — offered guardianship, has not accepted yet', guardians)

  // bob sees the offer live, but not the child, until he accepts.
  const offers = otherParent.section('Guardianship offered to you')
  await otherParent.sees('You were offered guardianship of a child: accept it to see the child.')
  await otherParent.sees(`${CHILD}, born`, offers)
  assert(
    (await otherParent.section('Your children').getByText(CHILD).count()) === 0,
    'bob does not have the child before accepting',
  )
  await screenshot(otherParent, 'other-parent-offered-guardianship', otherParent.page.locator('.side'))
  await otherParent.click(`Accept guardianship of ${CHILD}`)
  await otherParent.sees(CHILD, otherParent.section('Your children'))
  await otherParent.sees(/Version 1, last changed by alice/, otherParent.section('Medical card'))
  assert((await offers.count()) === 0, 'the accepted offer is gone')
  await parent.sees('A parent accepted guardianship of a child and is now a guardian.')
  await parent.sees('bob — guardian', guardians)

  const doctorField = p.getByLabel(/Pediatrician.s user name/)
  await doctorField.fill('dr-nobody')
  await parent.click('Sign agreement')
  const problem = parent.section('Pediatrician').getByRole('alert')
  await problem.waitFor()
  const sentence = (await problem.innerText()).trim()
  assert(
    sentence === 'Please check what you entered. doctorUid must name an enrolled hospital doctor.',
    `the error reads: ${sentence}`,
  )
  await screenshot(parent, 'parent-error-as-a-sentence', parent.section('Pediatrician'))

  await doctorField.fill('dr-house')
  await p.getByLabel('Ends on').fill(AGREEMENT_ENDS)
  await parent.click('Sign agreement')
  await parent.sees('waiting for the pediatrician to accept')
  const agreementDates = parent.section('Pediatrician')
  await parent.sees(new RegExp(`ends .*${AGREEMENT_ENDS.slice(0, 4)}`), agreementDates)
  await screenshot(parent, 'parent-registered-child-and-signed')

  await doctor.sees('alice asks you to be the pediatrician of their child', doctor.section('Agreements waiting for you'))
  await doctor.sees('A parent asked you to be their child’s pediatrician.')
  await doctor.click('Accept agreement from alice')
  await doctor.sees(CHILD, doctor.section('Your patients'))
  await parent.sees('active: this pediatrician can read and edit the card')
  await p.getByLabel('New end date of the agreement with dr-house').fill(AGREEMENT_EXTENDED)
  await parent.click('Extend agreement with dr-house')
  await parent.sees(new RegExp(`ends .*${AGREEMENT_EXTENDED.slice(0, 4)}`), agreementDates)
  await doctor.sees('Parents changed the end date of their agreement with you.')

  const editor = doctor.section('Medical card')
  await editor.getByText('Editing version 1').waitFor()
  await editor.getByLabel('Blood type').selectOption('A+')
  await editor.getByLabel('Health group').selectOption('2')
  await editor.getByLabel('PE group').selectOption('PREPARATORY')
  await editor.getByLabel('Allergies').fill('peanuts')
  await editor.getByRole('button', { name: 'Add vaccination' }).click()
  const vaccinations = editor.getByRole('group', { name: 'Vaccinations' })
  await vaccinations.getByLabel('Vaccine').fill('MMR')
  await vaccinations.getByLabel('Date').fill('2020-05-01')
  await vaccinations.getByLabel('Dose').fill('1')
  await editor.getByLabel('Notes').fill('Mild asthma in winter; inhaler at home.')
  await doctor.click(/Save card/)
  await doctor.sees('Saved as version 2.')
  await screenshot(doctor, 'doctor-card-editor')

  // A second tab of the same doctor, still on version 2, while the first saves version 3.
  const staleTab = await doctor.context.newPage()
  await staleTab.goto(BASE_URL + '/')
  const staleEditor = staleTab.getByRole('region', { name: 'Medical card', exact: true })
  await staleEditor.getByText('Editing version 2').waitFor()
  await staleEditor.getByLabel('Notes').fill('Second opinion: no asthma.')
  await editor.getByLabel('Notes').fill('Asthma confirmed; follow-up in spring.')
  await doctor.click(/Save card/)
  await doctor.sees('Saved as version 3.')
  await staleTab.getByText(/dr-house changed this card .* now\s+version 3/).waitFor()
  await staleTab.getByRole('button', { name: /Save card/ }).click()
  const warning = staleEditor.getByRole('alert').filter({ hasText: 'Not saved' })
  await warning.getByText('Not saved: the card changed while you were editing.').waitFor()
  await warning.getByText(/Version 3 by dr-house.*Notes changed/).waitFor()
  await screenshot(doctor, 'doctor-stale-version', staleEditor)
  await staleTab.getByRole('button', { name: 'Reload the card (discards your edits)' }).click()
  await staleEditor.getByText('Editing version 3').waitFor()
  assert(
    (await staleEditor.getByLabel('Notes').inputValue()) === 'Asthma confirmed; follow-up in spring.',
    'the reloaded card shows the version the other tab saved',
  )
  await staleTab.close()

  const history = parent.section('History')
  await parent.sees('Version 3', history)
  await parent.sees('Allergies: added peanuts', history)
  await parent.sees('Health group: not set → 2', history)
  await parent.sees('Vaccinations: added MMR dose 1 (2020-05-01)', history)
  const card = parent.section('Medical card')
  await parent.sees('Asthma confirmed; follow-up in spring.', card)
  assert((await card.getByRole('textbox').count()) === 0, 'the parent sees the card read-only')
  // The browser recomputes version 3 up to a checkpoint signed by the log's key, which it pins.
  await history.getByRole('button', { name: 'Verify version 3' }).click()
  await parent.sees(/✓ Verified in the log at checkpoint \d+/, history)
  assert(
    (await p.evaluate(() => localStorage.getItem('healthledger.logKey.medical'))) === logKey('medical'),
    'the browser pinned the medical log’s key as the network publishes it',
  )
  await screenshot(parent, 'parent-card-and-history', p.locator('.child-sections'))

  step('2. the parent applies to school-a, which accepts')
  await parent.section('Schools').getByLabel('School').selectOption('school-a')
  await parent.click('Apply to school')
  await parent.sees('waiting for the school’s decision')
  await schoolA.sees('A new admission request is waiting for your decision.')
  await schoolA.sees(CHILD)
  await screenshot(schoolA, 'school-a-admission-request')
  await schoolA.click(`Accept ${CHILD}`)
  await parent.sees('accepted', parent.section('Schools'))
  await schoolB.sees('No admission requests.')
  await schoolB.doesNotSee(CHILD)

  step('3. school-a asks the pediatrician for a health report')
  await schoolA.click(`Request a health report for ${CHILD}`)
  await schoolA.sees('Health report requested, waiting for the pediatrician.')
  await parent.sees(/school-a\s+asked for a health report/)
  await doctor.sees(/school-a\s+needs a report on/)
  await doctor.sees('A school asked you for a health report on a patient.')
  await screenshot(schoolA, 'school-a-report-requested')

  step('4. the pediatrician writes the report from the card, previewing what the school will read')
  const writer = doctor.section('Write a health report')
  await writer.getByLabel('Conclusion for school-a').fill(CONCLUSION)
  const preview = writer.getByRole('region', { name: 'Preview: what school-a will be able to read' })
  await doctor.sees(CONCLUSION, preview)
  await doctor.sees('peanuts', preview)
  await doctor.sees('Preparatory', preview)
  assert((await preview.getByText('Asthma').count()) === 0, 'the preview leaves the notes out')
  await screenshot(doctor, 'doctor-report-preview', writer)
  await doctor.click('Create report')
  await doctor.sees('No school is waiting for a report.')

  await parent.sees('A health report is ready for your approval.')
  await parent.sees('ready — waiting for your approval')
  await parent.sees('No school can read it yet.')
  await parent.section('Health reports').scrollIntoViewIfNeeded()
  await screenshot(parent, 'parent-report-ready-live', 'window')

  const locked = 'You cannot read this report: the parents have not approved it for your school.'
  await schoolA.sees(locked)
  await schoolA.doesNotSee(CONCLUSION)
  await screenshot(schoolA, 'school-a-report-not-yet-approved')
  await schoolB.sees('No health reports.')

  step('5. the parent permits school-a (not school-b) to read it; school-a reads it; the parent withdraws')
  const reports = parent.section('Health reports')
  assert(await reports.getByLabel(/^school-a/).isChecked(), 'school-a, which asked, is preselected')
  assert(!(await reports.getByLabel(/^school-b/).isChecked()), 'school-b is not preselected')
  await parent.click('Approve for the chosen schools')
  await parent.sees('Withdraw permission for school-a')
  await parent.doesNotSee('Withdraw permission for school-b')
  const permission = reports.locator('[data-test="permission"]')
  await parent.sees('school-a — may read it', permission)
  await parent.sees(/Approved .*; until /, permission)
  await reports.getByRole('button', { name: 'Verify this report' }).click()
  await parent.sees(/✓ Verified in the log at checkpoint \d+/, reports)
  await screenshot(parent, 'parent-approved-for-school-a', reports)

  await schoolA.sees(CONCLUSION)
  await schoolA.sees('approved for your school')
  await screenshot(schoolA, 'school-a-reads-the-report')
  await schoolB.sees('No health reports.')
  await schoolB.sees('No admission requests.')
  for (const secret of [CHILD, CONCLUSION, 'peanuts']) await schoolB.doesNotSee(secret)
  await screenshot(schoolB, 'school-b-sees-nothing')

  await parent.click('Withdraw permission for school-a')
  await parent.sees('No school can read it yet.')
  await schoolA.sees(locked)
  await schoolA.doesNotSee(CONCLUSION)
  await parent.sees('school-a — may no longer read it: you withdrew the permission', permission)
  await screenshot(parent, 'parent-withdrew-permission', reports)

  console.log('   the parent downloads the child’s record as an HL7 FHIR R4 file')
  const childId = (await p.locator('[data-test="child-id"]').innerText()).trim()
  const record = parent.section('Download the record')
  const downloading = p.waitForEvent('download')
  await record.getByRole('button', { name: 'Download FHIR record' }).click()
  const download = await downloading
  assert.match(download.suggestedFilename(), /^mia-martin-\d{4}-\d\d-\d\d\.fhir\.json$/)
  await parent.sees(`Saved as ${download.suggestedFilename()}.`, record)
  const bundle = JSON.parse(readFileSync(await download.path(), 'utf8')) as FhirBundle
  assert.equal(bundle.resourceType, 'Bundle')
  const resources = bundle.entry.map((entry) => entry.resource)
  assert.deepEqual(
    resources.filter((resource) => resource.resourceType === 'Patient').map((patient) => patient.id),
    [childId],
    'the record holds the child as its one Patient',
  )
  assert(
    resources.some((resource) => resource.resourceType === 'Immunization' && resource.vaccineCode?.text === 'MMR'),
    'the record holds the card’s MMR vaccination',
  )
  assert(
    resources.some((resource) => resource.resourceType === 'DocumentReference'),
    'the record holds the health report',
  )

  step('6. a second pediatrician opens emergency access with a reason; the parents see the banner and the reads, and end it; the next read is refused')
  const emergencyDoctor = await Person.open(browser, EMERGENCY_DOCTOR, 'hospital')
  people.push(emergencyDoctor)
  const e = emergencyDoctor.page
  await emergencyDoctor.sees('No patients under an active agreement.')
  await e.getByLabel('Child id').fill(childId)
  await emergencyDoctor.click('Emergency access…')
  const dialog = e.getByRole('dialog', { name: `Emergency access to child ${childId}` })
  const reason = dialog.getByLabel('Why do you need the card now?')
  await reason.fill('Fell over.')
  await dialog.getByRole('button', { name: 'Open emergency access' }).click()
  await emergencyDoctor.sees('Give a reason of at least 20 characters (now 10): the parents read it.', dialog)
  await reason.fill(EMERGENCY_REASON)
  await screenshot(emergencyDoctor, 'doctor-emergency-reason', 'window')
  await dialog.getByRole('button', { name: 'Open emergency access' }).click()
  const emergencyCard = emergencyDoctor.section('Medical card')
  await emergencyDoctor.sees('Asthma confirmed; follow-up in spring.', emergencyCard)
  await emergencyDoctor.sees(CHILD, e.locator('.child-title'))
  await emergencyDoctor.sees(/You may read this card, never change it, until/)
  assert((await emergencyCard.getByRole('textbox').count()) === 0, 'the emergency card is read-only')
  await screenshot(emergencyDoctor, 'doctor-emergency-card', 'window')

  const bannerName = `Emergency access to ${CHILD}’s medical card`
  for (const guardian of [parent, otherParent]) {
    const banner = guardian.page.getByRole('alert', { name: bannerName })
    await guardian.sees(EMERGENCY_REASON, banner)
    await guardian.sees(`${EMERGENCY_DOCTOR}, a pediatrician of the hospital, opened it`, banner)
  }
  await parent.sees('A doctor opened emergency access to your child’s medical card: see the banner at the top.')
  await p.evaluate(() => window.scrollTo(0, 0))
  await screenshot(parent, 'parent-emergency-banner', 'window')

  const log = parent.section('Who saw this record')
  const emergencyRead = log.locator('.access-emergency').filter({ hasText: EMERGENCY_DOCTOR })
  await parent.sees(/read the medical card \(version 3\) under emergency access/, emergencyRead)
  await parent.sees('Pediatrician, hospital', emergencyRead)

  await parent.page.getByRole('alert', { name: bannerName }).getByRole('button', { name: /^End it/ }).click()
  for (const guardian of [parent, otherParent]) {
    await guardian.page.getByRole('alert', { name: bannerName }).waitFor({ state: 'detached' })
  }
  await emergencyDoctor.sees('Your emergency access to a child’s card ended: you can no longer read it.')
  await emergencyDoctor.click('Read the card again')
  await emergencyDoctor.sees('This record does not exist, or you are not allowed to see it.', emergencyCard)
  await emergencyDoctor.sees('The card can no longer be read.')
  await emergencyDoctor.doesNotSee('Asthma confirmed; follow-up in spring.')
  await screenshot(emergencyDoctor, 'doctor-emergency-refused', 'window')

  const refusal = log.locator('.access-refused').filter({ hasText: EMERGENCY_DOCTOR })
  await parent.sees('tried to read the medical card', refusal)
  await log.evaluate((section) => section.scrollIntoView({ block: 'start' }))
  await screenshot(parent, 'parent-access-log', 'window')

  for (const person of people) {
    assert(person.loads === 1, `${person.uid}'s page was loaded ${person.loads} times; updates must arrive live`)
  }

  console.log('   the administrator explores the blocks: the parents’ and schools’ transactions are hidden')
  const admin = await Person.open(browser, 'hospital-admin', 'hospital')
  await admin.click('Verify medical')
  await admin.sees(/Intact \(\d+ blocks\): the blocks added since the last check are sound\./)
  await admin.click('Full re-verification of medical')
  await admin.sees(/Intact: all \d+ blocks rechecked from block 0 and the state replayed/)
  await admin.click('Show blocks of medical')
  const explorer = admin.page.getByRole('list', { name: 'Blocks of medical, newest first' })
  await admin.sees(/Transaction \d+: hidden — you cannot read its records\./, explorer)
  await admin.sees(/\d+ transactions?, \d+ hidden from you/, explorer)
  for (const secret of ['alice', 'bob', 'dr-house', 'registerChild', 'updateMedicalCard']) {
    assert((await explorer.getByText(secret).count()) === 0, `the administrator sees ${secret} in the explorer`)
  }
  await screenshot(admin, 'admin-block-explorer', 'window')
  await admin.context.close()

  const phone = await Person.open(browser, 'alice', 'parents', { width: 390, height: 844 })
  await phone.sees(CHILD)
  await phone.sees('No school can read it yet.', phone.section('Health reports'))
  await screenshot(phone, 'parent-on-a-phone', 'window')
  const overflow = await phone.page.evaluate(
    () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
  )
  assert(overflow <= 0, `the phone-width page scrolls sideways by ${overflow}px`)
  await phone.context.close()
}

const ME = '{ me { uid role } }'
const SUBSCRIPTION = 'subscription MedicalEvents { events(channel: "medical") { name channel } }'
const NSS_CHILD = 'Noah Diaz'

/** Replaces the operation in GraphiQL's editor, typed key by key as a person types it; then Prettify. */
async function writeOperation(page: Page, operation: string): Promise<void> {
  await page.locator('.graphiql-query-editor .monaco-editor').click()
  await page.keyboard.press('ControlOrMeta+KeyA')
  await page.keyboard.press('Delete')
  // Monaco closes each bracket and quote, and types over the closing one when it comes.
  await page.keyboard.type(operation)
  await page.getByRole('button', { name: /^Prettify query/ }).click()
}

/** The answer in GraphiQL's result pane, as the JSON on screen. */
async function shownAnswer(person: Person, expected: string): Promise<unknown> {
  const result = person.page.locator('.result-window')
  await person.sees(expected, result)
  return JSON.parse((await result.innerText()).replaceAll('\u00a0', ' '))
}

/** Resolves with the websocket's URL once `page` sends a graphql-transport-ws `subscribe`. */
function subscribeSent(page: Page): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('GraphiQL sent no subscription')), STEP_TIMEOUT_MS)
    page.on('websocket', (socket) =>
      socket.on('framesent', ({ payload }) => {
        if (typeof payload === 'string' && JSON.parse(payload).type === 'subscribe') {
          clearTimeout(timer)
          resolve(socket.url())
        }
      }),
    )
  })
}

async function ownCertificateStore(browser: Browser): Promise<void> {
  step(
    `7. ${NSS_UID}’s browser presents their certificate from its own store: the app, then GraphiQL ` +
      'with every other host blocked, a query and a live subscription',
  )
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
  const origin = new URL(BASE_URL).origin
  const elsewhere: string[] = []
  await context.route(
    (url) => url.origin !== origin,
    (route) => {
      elsewhere.push(route.request().url())
      return route.abort('blockedbyclient')
    },
  )
  const refused: string[] = []
  context.on('console', (message) => {
    if (message.text().includes('Content Security Policy')) refused.push(message.text())
  })

  const app = await Person.enter(context, NSS_UID)
  const header = app.page.getByRole('banner')
  assert((await header.getByText('Parent', { exact: true }).count()) === 1, `${NSS_UID}: role Parent`)
  await app.sees('Your children')

  const ide = new Person(NSS_UID, context, await context.newPage())
  await ide.page.goto(BASE_URL + '/graphql')
  await writeOperation(ide.page, ME)
  await ide.page.getByRole('button', { name: /^Execute query/ }).click()
  const me = await shownAnswer(ide, '"PARENT"')
  assert.deepEqual(me, { data: { me: { uid: NSS_UID, role: 'PARENT' } } })
  await screenshot(ide, 'graphiql-me', 'window')

  const live = new Person(NSS_UID, context, await context.newPage())
  await live.page.goto(BASE_URL + '/graphiql')
  await writeOperation(live.page, SUBSCRIPTION)
  // GraphiQL names the tab once it has parsed the operation, and only then knows it is a subscription.
  await live.page.getByRole('tab', { name: 'MedicalEvents' }).waitFor()
  const subscribed = subscribeSent(live.page)
  await live.page.getByRole('button', { name: /^Execute query/ }).click()
  assert.equal(await subscribed, origin.replace(/^https:/, 'wss:') + '/graphql')
  await live.page.getByRole('button', { name: /^Stop query/ }).waitFor()

  await app.page.getByLabel('Full name').fill(NSS_CHILD)
  await app.page.getByLabel('Date of birth').fill('2020-02-29')
  await app.click('Register child')
  await app.sees('Card created.')
  const event = await shownAnswer(live, '"ChildRegistered"')
  assert.deepEqual(event, { data: { events: { name: 'ChildRegistered', channel: 'medical' } } })
  await screenshot(live, 'graphiql-subscription-event', 'window')

  assert.deepEqual(elsewhere, [], 'no request to another host was even attempted')
  assert.deepEqual(refused, [], 'the Content-Security-Policy refused nothing the pages needed')
  await context.close()
}

/** Last: alice erases Mia's records, typing the name in the dialog; the child is gone from both
 * parents' lists, what the doctor and the school see forgets it, and the access log keeps the erasure. */
async function erasure(browser: Browser): Promise<void> {
  step('8. the parent erases the child’s records by typing its full name; the child is gone from both parents’ lists and from everyone’s')
  const parent = await Person.open(browser, 'alice', 'parents')
  const otherParent = await Person.open(browser, 'bob', 'parents')
  const p = parent.page
  for (const guardian of [parent, otherParent]) {
    await guardian.sees(CHILD, guardian.section('Your children').locator('.choices'))
  }

  const zone = parent.section('Erase this child’s records')
  await zone.scrollIntoViewIfNeeded()
  await parent.click('Erase this child’s records…')
  const dialog = p.getByRole('dialog', { name: `Erase ${CHILD}’s records?` })
  await parent.sees('This cannot be undone.', dialog)
  await parent.sees(/destroyed on every channel of the ledger/, dialog)
  const name = dialog.getByLabel(`Type the child’s full name, ${CHILD}, to confirm`)
  assert(await name.evaluate((field) => field === document.activeElement), 'the name field has the focus')
  const erase = dialog.getByRole('button', { name: 'Erase for ever' })
  await name.fill(CHILD.toLowerCase())
  assert(await erase.isDisabled(), 'a name in other capitals does not enable the erasure')
  await p.keyboard.press('Escape')
  await dialog.waitFor({ state: 'hidden' })

  await parent.click('Erase this child’s records…')
  assert((await name.inputValue()) === '', 'the dialog opens afresh')
  await name.fill(`${CHILD} `)
  assert(await erase.isDisabled(), 'a trailing space does not enable the erasure')
  await name.fill(CHILD)
  assert(await erase.isEnabled(), 'the exact name enables the erasure')
  await screenshot(parent, 'parent-erase-dialog', 'window')
  await erase.click()

  const notice = p.getByRole('status').filter({ hasText: 'Erased on' })
  await parent.sees(new RegExp(`^Erased on .*: ${CHILD}’s records can no longer be read by anyone\.`), notice)
  await parent.sees('You have not registered a child yet.')
  assert((await p.locator('.choices').getByText(CHILD).count()) === 0, 'the child is gone from alice’s list')
  assert((await p.locator('.child-sections').count()) === 0, 'nothing of the child is shown')
  await otherParent.sees('A guardian erased a child’s records: nobody, you included, can read them again.')
  await otherParent.page.locator('.choices').getByText(CHILD).waitFor({ state: 'detached' })
  await otherParent.sees('You have not registered a child yet.')

  await notice.getByRole('button', { name: 'Show what the access log keeps' }).click()
  const erasureEntry = notice.locator('.access-erased')
  await parent.sees('erased the child’s records as a guardian: nobody can read them again', erasureEntry)
  await parent.sees('alice', erasureEntry)
  await parent.sees(/blocks \d+ and \d+ \(recorded on each of the ledger’s channels\)/, erasureEntry)
  assert(
    (await notice.locator('[data-test="access-entry"]').count()) === 1,
    'the erasure is the one entry anyone can still read',
  )
  await screenshot(parent, 'parent-erased', p.locator('.side'))

  // Pages opened afterwards: the pediatrician's patient and the school's applicant are gone.
  const doctor = await Person.open(browser, 'dr-house', 'hospital')
  await doctor.sees('No patients under an active agreement.')
  await doctor.doesNotSee(CHILD)
  const schoolA = await Person.open(browser, 'school-a-office', 'school-a')
  await schoolA.sees('No admission requests.')
  await schoolA.doesNotSee(CHILD)
  await schoolA.doesNotSee(CONCLUSION)
  for (const person of [parent, otherParent, doctor, schoolA]) await person.context.close()
}

let browser: Browser
// Launched with E2E_NSS_HOME as HOME: Chromium on Linux keeps its certificates in $HOME/.pki/nssdb.
let ownStoreBrowser: Browser

/** A screenshot of every open page of `of`, after a failure. */
async function captureEveryPage(of: Browser, prefix: string): Promise<void> {
  // A page that cannot be captured any more must not hide the test's own failure.
  for (const [c, context] of of.contexts().entries()) {
    for (const [p, page] of context.pages().entries()) {
      await page.screenshot({ path: join(OUTPUT, `${prefix}-${c}-${p}.png`), fullPage: true }).catch(() => {})
    }
  }
}

beforeAll(async () => {
  mkdirSync(OUTPUT, { recursive: true })
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })
  ownStoreBrowser = await chromium.launch({
    executablePath: CHROMIUM,
    args: CHROMIUM_ARGS,
    env: { ...process.env, HOME: NSS_HOME },
  })
})

afterAll(async () => {
  await browser.close()
  await ownStoreBrowser.close()
})

test('the five-step story, as each person sees it', async ({ onTestFailed }) => {
  onTestFailed(() => captureEveryPage(browser, 'failure'))
  await story(browser)
})

test('a parent with their certificate in the browser’s own store, in the app and GraphiQL', async ({ onTestFailed }) => {
  onTestFailed(() => captureEveryPage(ownStoreBrowser, 'failure-own-store'))
  await ownCertificateStore(ownStoreBrowser)
})

// After the story, whose child it erases.
test('a parent erases the child’s records, typing its name', async ({ onTestFailed }) => {
  onTestFailed(() => captureEveryPage(browser, 'failure-erasure'))
  await erasure(browser)
})
