// A log made by the tests themselves, with node:crypto and RFC 9162's recursive definitions (no
// code of src/domain/verify.ts): a signing key as the server's, and a card version's
// VerifiedRecord whose parts each test may tamper with.
import { createHash, generateKeyPairSync, sign } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import canonicalize from 'canonicalize'
import type { Expectation, VerifiedRecordData } from '../src/domain/verify'

export const ORIGIN = 'healthledger/hl-0123456789ab/medical'

export function hashOf(...parts: (Buffer | Uint8Array | string)[]): Buffer {
  const hash = createHash('sha256')
  for (const part of parts) hash.update(part)
  return hash.digest()
}

// RFC 9162 2.1.1 (MTH) and 2.1.3.1 (PATH), recursively, as the RFC defines them.
const largestPowerOfTwoBelow = (n: number) => 2 ** Math.floor(Math.log2(n - 1))

export function mth(leaves: Buffer[]): Buffer {
  if (leaves.length === 1) return leaves[0]!
  const k = largestPowerOfTwoBelow(leaves.length)
  return hashOf(Buffer.from([1]), mth(leaves.slice(0, k)), mth(leaves.slice(k)))
}

export function path(m: number, leaves: Buffer[]): Buffer[] {
  if (leaves.length === 1) return []
  const k = largestPowerOfTwoBelow(leaves.length)
  return m < k
    ? [...path(m, leaves.slice(0, k)), mth(leaves.slice(k))]
    : [...path(m - k, leaves.slice(k)), mth(leaves.slice(0, k))]
}

/** A log's Ed25519 key, signing notes as the server does (C2SP signed-note). */
export class LogSigner {
  readonly keyPair = generateKeyPairSync('ed25519')
  constructor(readonly origin = ORIGIN) {}

  get publicKey(): Buffer {
    return (this.keyPair.publicKey as KeyObject).export({ format: 'der', type: 'spki' }).subarray(-32)
  }

  get keyId(): Buffer {
    return hashOf(`${this.origin}\n`, Buffer.from([1]), this.publicKey).subarray(0, 4)
  }

  /** The line of log/CHANNEL.pub. */
  verifierKey(): string {
    const material = Buffer.concat([Buffer.from([1]), this.publicKey]).toString('base64')
    return `${this.origin}+${this.keyId.toString('hex')}+${material}`
  }

  /** The signed note of `body` (by default the checkpoint of `size` leaves and `root`). */
  note(size: number, root: Buffer, body = `${this.origin}\n${size}\n${root.toString('base64')}\n`): string {
    const signature = sign(null, Buffer.from(body), this.keyPair.privateKey)
    return `${body}\n\u2014 ${this.origin} ${Buffer.concat([this.keyId, signature]).toString('base64')}\n`
  }
}

export const CHILD = 'child-1'
export const TX_ID = 'a1b2c3d4e5f60718293a4b5c6d7e8f90'
export const WRITTEN_AT = '2026-03-01T10:00:00.000000Z'
/** A card as the ledger stores it. */
export const STORED_CARD = {
  childId: CHILD,
  version: 3,
  updatedAt: WRITTEN_AT,
  updatedBy: 'dr-house',
  bloodType: 'A+',
  allergies: ['peanuts'],
  chronicConditions: [],
  vaccinations: [{ vaccine: 'MMR', date: '2020-05-01', dose: 1 }],
  examinations: [{ date: '2025-09-01', doctorUid: 'dr-house', heightCm: 120.5, weightKg: 22, findings: 'Ünïcode ✓' }],
  healthGroup: 2,
  physicalEducationGroup: 'PREPARATORY',
  notes: 'Asthma confirmed; follow-up in spring.',
}
/** The same card as the API gives it and the page shows it. */
export const SHOWN_CARD = { ...STORED_CARD, updatedAt: '2026-03-01T10:00:00+00:00', __typename: 'MedicalCard' }

export interface MadeProof {
  record: VerifiedRecordData
  expected: Expectation
  signer: LogSigner
}

/** Version 3 of a card, written by a transaction that is leaf 5 of a log of 7 transactions;
 * `tamper` replaces fields of that transaction, or the record's canonical text. */
export function madeProof(
  tamper: { tx?: Record<string, unknown>; canonicalText?: string } = {},
  signer = new LogSigner(),
): MadeProof {
  const salt = hashOf('salt').toString('hex')
  const canonicalText = tamper.canonicalText ?? canonicalize(STORED_CARD)!
  const commitment = hashOf(Buffer.from(salt, 'hex'), canonicalText).toString('hex')
  const envelope = {
    sealed: { alg: 'A256GCM', child: CHILD, tx: TX_ID, nonce: 'bm9uY2U=', data: 'ZGF0YQ==', commitment },
  }
  const tx = {
    channel: 'medical',
    contract: 'medical',
    function: 'updateMedicalCard',
    creator: { msp: 'hospitalMSP', uid: 'dr-house' },
    timestamp: WRITTEN_AT,
    tx_id: TX_ID,
    validation: 'VALID',
    write_set: { [`card/${CHILD}`]: envelope },
    ...tamper.tx,
  }
  // The leaf hashes the transaction's text as given, whichever canonical form made it.
  const txHashInputs = JSON.stringify(tx)
  const leaves = Array.from({ length: 7 }, (_, i) => hashOf(Buffer.from([0]), `other transaction ${i}`))
  leaves[5] = hashOf(Buffer.from([0]), hashOf(txHashInputs))
  const root = mth(leaves)
  const record: VerifiedRecordData = {
    key: `card/${CHILD}`,
    canonicalText,
    salt,
    commitment,
    txHashInputs,
    inclusion: {
      leafIndex: 5,
      treeSize: 7,
      leafHash: leaves[5]!.toString('hex'),
      hashes: path(5, leaves).map((hash) => hash.toString('hex')),
      checkpoint: { origin: ORIGIN, treeSize: 7, rootHash: root.toString('hex'), note: signer.note(7, root) },
    },
  }
  const expected = {
    channel: 'medical',
    key: `card/${CHILD}`,
    txId: TX_ID,
    writer: { uid: 'dr-house', at: '2026-03-01T10:00:00+00:00' },
    shown: SHOWN_CARD,
  }
  return { record, signer, expected }
}
