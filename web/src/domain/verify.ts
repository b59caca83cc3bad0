// Verified reads in the browser: the record the page shows, recomputed from the server's
// VerifiedRecord up to a checkpoint signed by the log's key, trusting nothing the server says.
//
// The six checks, in order (docs/web.md, docs/transparency.md):
// 1. canonicalText is the RFC 8785 text of itself and holds what the page shows;
// 2. SHA-256(salt bytes ‖ UTF-8(canonicalText)) is the commitment;
// 3. the transaction (txHashInputs) is the valid one the page names (with its author and time,
//    where shown), on the record's channel, and wrote that commitment to the record's key;
// 4. SHA-256(0x00 ‖ SHA-256(UTF-8(txHashInputs))) is the proof's leaf hash;
// 5. the RFC 9162 inclusion proof (2.1.3.2) leads from that leaf to the checkpoint's root;
// 6. the checkpoint note's Ed25519 signature verifies with the log's verifier key.
import canonicalize from 'canonicalize'

export interface CheckpointData {
  origin: string
  treeSize: number
  /** Lower-case hex. */
  rootHash: string
  /** The signed note (C2SP tlog-checkpoint in a C2SP signed-note). */
  note: string
}

export interface InclusionData {
  leafIndex: number
  treeSize: number
  leafHash: string
  /** The audit path, leaf level first, lower-case hex. */
  hashes: string[]
  checkpoint: CheckpointData
}

/** What the API's `proof` field gives: everything needed to recompute value → root. */
export interface VerifiedRecordData {
  key: string
  canonicalText: string
  salt: string
  commitment: string
  txHashInputs: string
  inclusion: InclusionData
}

/** What the page shows of a record, and where that record lives: what the proof must match. */
export interface Expectation {
  /** The ledger channel the record is on, as the app knows it ('medical', 'report'). */
  channel: string
  /** The record's ledger key, e.g. card/CHILD-ID. */
  key: string
  /** The transaction the page says wrote the version shown; null where the page names none. */
  txId: string | null
  /** Who wrote the version and when, where the page shows the transaction's own. */
  writer?: { uid: string; at: string }
  /** The data on screen; the record in the log must hold each of its fields, as shown. */
  shown: Record<string, unknown>
}

export type Verdict =
  | { verified: true; checkpoint: number; origin: string }
  | { verified: false; reason: string }

/** A check that failed; the message is the reason, a sentence fragment after "not verified: ". */
export class VerificationError extends Error {}

/** The log's public key: its name (the log's origin), 4-byte key id and raw Ed25519 key. */
export interface VerifierKey {
  name: string
  keyId: Uint8Array
  publicKey: Uint8Array
}

/** A checkpoint whose signature verified. */
export interface SignedCheckpoint {
  origin: string
  treeSize: number
  root: Uint8Array
}

const HEX64 = /^[0-9a-f]{64}$/
const HEX8 = /^[0-9a-fA-F]{8}$/
const TREE_SIZE = /^(0|[1-9][0-9]*)$/
const TIMESTAMP = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/
const SIGNATURE_DASH = '\u2014'
const ED25519 = 0x01 // the signed-note signature type of Ed25519
const MAX_SIGNATURES = 64
const utf8 = new TextEncoder()

// -- bytes ---------------------------------------------------------------------------------

function hexBytes(hex: string, what: string): Uint8Array {
  if (!HEX64.test(hex)) throw new VerificationError(`${what} is not 64 lower-case hex digits`)
  const bytes = new Uint8Array(32)
  for (let i = 0; i < 32; i += 1) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16)
  return bytes
}

function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
}

function base64Bytes(text: string, what: string): Uint8Array {
  // atob accepts a missing padding and blanks; a signed note's base64 is standard and padded.
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text)) {
    throw new VerificationError(`${what} is not base64`)
  }
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0))
}

function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const joined = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const part of parts) {
    joined.set(part, at)
    at += part.length
  }
  return joined
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i])
}

async function sha256(...parts: Uint8Array[]): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', concat(...parts)))
}

// -- 1. the canonical text -----------------------------------------------------------------

/** The record's value, once `text` is its own RFC 8785 canonical form. */
export function canonicalValue(text: string): unknown {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new VerificationError('the record’s text is not JSON')
  }
  let again: string | undefined
  try {
    again = canonicalize(value)
  } catch {
    again = undefined
  }
  if (again !== text) {
    throw new VerificationError('the record’s text is not in RFC 8785 canonical form')
  }
  return value
}

/** A timestamp's instant to the microsecond ("…:00Z" and "…:00.000000+00:00" are one), or null. */
function instant(text: string): string | null {
  const match = TIMESTAMP.exec(text)
  if (!match) return null
  const [, seconds, fraction = '', zone] = match
  const epoch = Date.parse(`${seconds}${zone === 'Z' ? 'Z' : zone}`)
  return Number.isNaN(epoch) ? null : `${epoch}.${fraction.padEnd(9, '0')}`
}

function samePrimitive(stored: unknown, shown: unknown): boolean {
  if (stored === shown) return true
  if (typeof stored !== 'string' || typeof shown !== 'string') return false
  // The API gives a time as an ISO 8601 date-time; the ledger stores it as UTC with a Z.
  const a = instant(stored)
  return a !== null && a === instant(shown)
}

/** Where `stored` does not hold `shown` (a field path such as "vaccinations[0].dose"), or
 * null when every field shown is in the record with the value shown. */
export function differingField(stored: unknown, shown: unknown, path = ''): string | null {
  const here = path || 'the record'
  if (Array.isArray(shown)) {
    if (!Array.isArray(stored) || stored.length !== shown.length) return here
    for (const [i, item] of shown.entries()) {
      const differs = differingField(stored[i], item, `${path}[${i}]`)
      if (differs) return differs
    }
    return null
  }
  if (shown !== null && typeof shown === 'object') {
    if (stored === null || typeof stored !== 'object' || Array.isArray(stored)) return here
    for (const [field, value] of Object.entries(shown)) {
      if (field === '__typename') continue
      const where = path ? `${path}.${field}` : field
      if (!Object.hasOwn(stored, field)) return where
      const differs = differingField((stored as Record<string, unknown>)[field], value, where)
      if (differs) return differs
    }
    return null
  }
  return samePrimitive(stored, shown) ? null : here
}

// -- 2. the commitment ---------------------------------------------------------------------

async function checkCommitment(record: VerifiedRecordData): Promise<void> {
  const salt = hexBytes(record.salt, 'the salt')
  const expected = hexBytes(record.commitment, 'the commitment')
  const computed = await sha256(salt, utf8.encode(record.canonicalText))
  if (!equalBytes(computed, expected)) {
    throw new VerificationError('the record and its salt do not make the commitment given')
  }
}

// -- 3. the transaction --------------------------------------------------------------------

interface TransactionText {
  tx_id?: unknown
  channel?: unknown
  creator?: { uid?: unknown } | null
  timestamp?: unknown
  validation?: unknown
  write_set?: unknown
}

/** The transaction is the valid one `expected` names, on its channel, made by whom and when
 * the page says, and wrote the commitment to its key. */
function checkTransaction(record: VerifiedRecordData, expected: Expectation): void {
  let tx: TransactionText
  try {
    tx = JSON.parse(record.txHashInputs) as TransactionText
  } catch {
    throw new VerificationError('the transaction’s text is not JSON')
  }
  if (tx === null || typeof tx !== 'object') {
    throw new VerificationError('the transaction’s text is not a transaction')
  }
  if (expected.txId !== null && tx.tx_id !== expected.txId) {
    throw new VerificationError(`the proof is of another transaction than ${expected.txId}`)
  }
  if (tx.channel !== expected.channel) {
    throw new VerificationError(`the transaction is not on the ${expected.channel} channel`)
  }
  const writer = expected.writer
  if (writer && (tx.creator?.uid !== writer.uid || !samePrimitive(tx.timestamp, writer.at))) {
    throw new VerificationError('the transaction was not made by whom and when the page says')
  }
  if (tx.validation !== 'VALID') {
    throw new VerificationError('the transaction was not valid, so it wrote nothing')
  }
  const written = (tx.write_set as Record<string, unknown> | null | undefined)?.[record.key]
  const sealed = (written as { sealed?: { commitment?: unknown } } | null | undefined)?.sealed
  if (sealed?.commitment === undefined) {
    throw new VerificationError(`the transaction wrote no sealed value with a commitment to ${record.key}`)
  }
  if (sealed.commitment !== record.commitment) {
    throw new VerificationError(`the transaction wrote another commitment to ${record.key}`)
  }
}

// -- 4. the leaf ---------------------------------------------------------------------------

/** SHA-256(0x00 ‖ SHA-256(UTF-8(text))): a transaction's leaf hash in the log (RFC 9162). */
async function transactionLeaf(text: string): Promise<Uint8Array> {
  return sha256(new Uint8Array([0]), await sha256(utf8.encode(text)))
}

// -- 5. the inclusion proof ----------------------------------------------------------------

function nodeHash(left: Uint8Array, right: Uint8Array): Promise<Uint8Array> {
  return sha256(new Uint8Array([1]), left, right)
}

/** How many hashes the audit path of leaf `index` in a tree of `size` leaves has. */
export function inclusionProofLength(index: number, size: number): number {
  const differ = BigInt(index) ^ BigInt(size - 1)
  const inner = differ === 0n ? 0 : differ.toString(2).length
  const above = (BigInt(index) >> BigInt(inner)).toString(2)
  return inner + [...above].filter((bit) => bit === '1').length
}

/** Leaf hash `leaf` is leaf `index` of the tree of `size` leaves whose root is `root`
 * (RFC 9162, 2.1.3.2); throws VerificationError saying why not. */
export async function verifyInclusion(
  index: number,
  size: number,
  leaf: Uint8Array,
  proof: Uint8Array[],
  root: Uint8Array,
): Promise<void> {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) {
    throw new VerificationError(`leaf ${index} cannot be in a tree of ${size} leaves`)
  }
  if ([leaf, root, ...proof].some((hash) => hash.length !== 32)) {
    throw new VerificationError('a hash of the inclusion proof is not 32 bytes long')
  }
  const wanted = inclusionProofLength(index, size)
  if (proof.length !== wanted) {
    throw new VerificationError(
      `the inclusion proof has ${proof.length} hashes where leaf ${index} of a tree of ${size} leaves needs ${wanted}`,
    )
  }
  let fn = BigInt(index)
  let sn = BigInt(size - 1)
  let r = leaf
  for (const p of proof) {
    if (fn & 1n || fn === sn) {
      r = await nodeHash(p, r)
      while (fn !== 0n && !(fn & 1n)) {
        fn >>= 1n
        sn >>= 1n
      }
    } else {
      r = await nodeHash(r, p)
    }
    fn >>= 1n
    sn >>= 1n
  }
  if (sn !== 0n || !equalBytes(r, root)) {
    throw new VerificationError(
      `the inclusion proof leads to root ${toHex(r)}, not to the checkpoint’s root ${toHex(root)}`,
    )
  }
}

// -- 6. the signed checkpoint --------------------------------------------------------------

/** The key of a verifier key line `NAME+KEYID8HEX+BASE64(0x01 ‖ 32-byte Ed25519 key)`, once
 * its key id is SHA-256(NAME ‖ "\n" ‖ 0x01 ‖ key)[:4] (C2SP signed-note). */
export async function parseVerifierKey(line: string): Promise<VerifierKey> {
  const text = line.trim()
  const parts = text.split('+')
  const [name, keyId] = parts
  const encoded = parts.slice(2).join('+') // the name has no "+", the base64 key may
  if (parts.length < 3 || !name || /\s/.test(text)) {
    throw new VerificationError('the log’s key is not a verifier key NAME+KEYID+KEY')
  }
  if (!HEX8.test(keyId!)) throw new VerificationError('the log’s key id is not 8 hex digits')
  const key = base64Bytes(encoded, 'the log’s key')
  if (key.length !== 33 || key[0] !== ED25519) {
    throw new VerificationError('the log’s key is not an Ed25519 signed-note key')
  }
  const id = Uint8Array.from(keyId!.match(/../g)!, (pair) => parseInt(pair, 16))
  const computed = (await sha256(utf8.encode(`${name}\n`), key)).slice(0, 4)
  if (!equalBytes(computed, id)) {
    throw new VerificationError('the log’s key id does not fit its name and key')
  }
  return { name, keyId: id, publicKey: key.slice(1) }
}

async function ed25519Verify(publicKey: Uint8Array, signature: Uint8Array, message: Uint8Array): Promise<boolean> {
  let key: CryptoKey
  try {
    key = await crypto.subtle.importKey('raw', concat(publicKey), { name: 'Ed25519' }, false, ['verify'])
  } catch {
    throw new VerificationError(
      'this browser cannot check Ed25519 signatures (its WebCrypto has no Ed25519), so the checkpoint’s signature is unchecked',
    )
  }
  return crypto.subtle.verify({ name: 'Ed25519' }, key, concat(signature), concat(message))
}

/** The checkpoint in `note`, once its signature by `key` verifies and its origin is the key's
 * name; throws VerificationError saying why not. Other signers' lines (a witness's) are ignored. */
export async function verifyCheckpoint(note: string, key: VerifierKey): Promise<SignedCheckpoint> {
  // A blank line after the signatures is not signed text.
  const text = note.replace(/\n+$/, '') + '\n'
  if ([...text].some((c) => c < ' ' && c !== '\n')) {
    throw new VerificationError('the checkpoint holds control characters')
  }
  const end = text.lastIndexOf('\n\n')
  if (end < 0 || end + 2 === text.length) {
    throw new VerificationError('the checkpoint is not a signed note (no signature lines)')
  }
  const body = text.slice(0, end + 1)
  const lines = text.slice(end + 2, -1).split('\n')
  if (lines.length > MAX_SIGNATURES) {
    throw new VerificationError(`the checkpoint has more than ${MAX_SIGNATURES} signatures`)
  }
  const signers = lines.map((line) => {
    const parts = line.split(' ')
    if (parts.length !== 3 || parts[0] !== SIGNATURE_DASH || !parts[1]) {
      throw new VerificationError('the checkpoint has a malformed signature line')
    }
    const signature = base64Bytes(parts[2]!, 'a signature of the checkpoint')
    if (signature.length < 5) throw new VerificationError('a signature of the checkpoint is too short')
    return { name: parts[1], signature }
  })
  const mine = signers.filter(
    ({ name, signature }) => name === key.name && equalBytes(signature.slice(0, 4), key.keyId),
  )
  if (!mine.length) {
    throw new VerificationError(`the checkpoint is not signed by the log’s key ${key.name}+${toHex(key.keyId)}`)
  }
  for (const { signature } of mine) {
    if (!(await ed25519Verify(key.publicKey, signature.slice(4), utf8.encode(body)))) {
      throw new VerificationError('the checkpoint’s signature does not verify with the log’s key')
    }
  }
  const [origin, size, root] = body.slice(0, -1).split('\n')
  if (!origin || !size || !root) {
    throw new VerificationError('the checkpoint is not an origin, a size and a root hash')
  }
  if (origin !== key.name) {
    throw new VerificationError(`the checkpoint is of the log ${origin}, the key of ${key.name}`)
  }
  if (!TREE_SIZE.test(size)) throw new VerificationError('the checkpoint’s tree size is not a number')
  const digest = base64Bytes(root, 'the checkpoint’s root hash')
  if (digest.length !== 32) throw new VerificationError('the checkpoint’s root hash is not 32 bytes')
  return { origin, treeSize: Number(size), root: digest }
}

// -- all six -------------------------------------------------------------------------------

/** Runs the six checks on `record` against what the page shows and the log's pinned verifier
 * key line; the verdict names the checkpoint, or the first check that failed and why. */
export async function verifyRecord(
  record: VerifiedRecordData,
  expected: Expectation,
  verifierKey: string,
): Promise<Verdict> {
  try {
    const checkpoint = await checkRecord(record, expected, verifierKey)
    return { verified: true, checkpoint: checkpoint.treeSize, origin: checkpoint.origin }
  } catch (error) {
    if (error instanceof VerificationError) return { verified: false, reason: error.message }
    throw error
  }
}

async function checkRecord(
  record: VerifiedRecordData,
  expected: Expectation,
  verifierKey: string,
): Promise<SignedCheckpoint> {
  if (record.key !== expected.key) {
    throw new VerificationError(`the proof is of ${record.key}, not of ${expected.key}`)
  }
  const differs = differingField(canonicalValue(record.canonicalText), expected.shown)
  if (differs) {
    throw new VerificationError(`the record in the log does not hold what the page shows (${differs})`)
  }
  await checkCommitment(record)
  checkTransaction(record, expected)
  const { inclusion } = record
  const leaf = await transactionLeaf(record.txHashInputs)
  if (!equalBytes(leaf, hexBytes(inclusion.leafHash, 'the leaf hash'))) {
    throw new VerificationError('the transaction’s text does not hash to the proof’s leaf')
  }
  const key = await parseVerifierKey(verifierKey)
  if (!key.name.endsWith(`/${expected.channel}`)) {
    throw new VerificationError(`the log’s key ${key.name} is not that of the ${expected.channel} channel`)
  }
  const root = hexBytes(inclusion.checkpoint.rootHash, 'the checkpoint’s root hash')
  const hashes = inclusion.hashes.map((hash, i) => hexBytes(hash, `hash ${i} of the inclusion proof`))
  await verifyInclusion(inclusion.leafIndex, inclusion.treeSize, leaf, hashes, root)
  const signed = await verifyCheckpoint(inclusion.checkpoint.note, key)
  if (signed.treeSize !== inclusion.treeSize || !equalBytes(signed.root, root)) {
    throw new VerificationError(
      `the signed checkpoint is of a tree of ${signed.treeSize} leaves with another root than the proof’s`,
    )
  }
  if (inclusion.checkpoint.treeSize !== signed.treeSize || inclusion.checkpoint.origin !== signed.origin) {
    throw new VerificationError('the checkpoint’s fields disagree with its signed note')
  }
  return signed
}
