// The browser's verified read (src/domain/verify.ts): the RFC 9162 reference vectors, a whole
// record verified up to a signed checkpoint, and each of the six checks refusing a tampered
// proof with its reason. The fixtures (logFixtures.ts) are made with node:crypto and the RFC's
// recursive definitions, sharing no code with the module.
import { afterEach, describe, expect, it, vi } from 'vitest'
import { keyLabel, pinLogKey, PIN_PREFIX } from '../src/domain/logKeys'
import {
  canonicalValue,
  differingField,
  inclusionProofLength,
  parseVerifierKey,
  verifyCheckpoint,
  verifyInclusion,
  verifyRecord,
  VerificationError,
} from '../src/domain/verify'
import {
  CHILD,
  hashOf,
  LogSigner,
  madeProof as made,
  mth,
  ORIGIN,
  path,
  SHOWN_CARD as SHOWN,
  STORED_CARD,
  TX_ID,
} from './logFixtures'
import type { MadeProof as Made } from './logFixtures'

// The RFC 6962 reference tree, as tests/test_proofcheck.py holds it (from
// github.com/transparency-dev/merkle testonly/constants.go and reference_test.go).
const LEAF_INPUTS = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f']
const LEAF_HASHES = [
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
  '0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7',
  '07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7',
  'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
  '4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658',
  'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f',
  '46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1',
]
const ROOTS = [
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
]
/** (leaf index, tree size, audit path) */
const INCLUSION_VECTORS: [number, number, string[]][] = [
  [0, 1, []],
  [0, 2, ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7']],
  [1, 2, ['6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d']],
  [2, 3, ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125']],
  [
    1,
    5,
    [
      '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    ],
  ],
  [
    0,
    8,
    [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  ],
  [
    5,
    8,
    [
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  ],
]

const bytes = (hex: string) => Uint8Array.from(Buffer.from(hex, 'hex'))

describe('the RFC 9162 reference tree', () => {
  it('gives each vector’s root from the leaf and its audit path', async () => {
    for (const [index, size, hashes] of INCLUSION_VECTORS) {
      await verifyInclusion(index, size, bytes(LEAF_HASHES[index]!), hashes.map(bytes), bytes(ROOTS[size]!))
    }
  })

  it('hashes leaves as the reference does, and every audit path of every size verifies', async () => {
    const leaves = LEAF_INPUTS.map((data) => hashOf(Buffer.from([0]), Buffer.from(data, 'hex')))
    expect(leaves.map((leaf) => leaf.toString('hex'))).toEqual(LEAF_HASHES)
    for (let size = 1; size <= 8; size += 1) {
      expect(mth(leaves.slice(0, size)).toString('hex')).toBe(ROOTS[size])
      for (let index = 0; index < size; index += 1) {
        const audit = path(index, leaves.slice(0, size))
        expect(inclusionProofLength(index, size)).toBe(audit.length)
        await verifyInclusion(index, size, leaves[index]!, audit, bytes(ROOTS[size]!))
      }
    }
  })

  it('refuses every tampered reference audit path, saying why', async () => {
    const refused = async (...args: Parameters<typeof verifyInclusion>) => {
      const error = await verifyInclusion(...args).then(() => null, (e: unknown) => e)
      expect(error).toBeInstanceOf(VerificationError)
      return (error as Error).message
    }
    for (const [index, size, hex] of INCLUSION_VECTORS.filter(([, , hashes]) => hashes.length)) {
      const [leaf, root, hashes] = [bytes(LEAF_HASHES[index]!), bytes(ROOTS[size]!), hex.map(bytes)]
      // Each hash in turn with one bit of its first byte flipped.
      const flipped = hashes.map((_, n) =>
        hashes.map((hash, m) => (m === n ? Uint8Array.from(hash, (b, i) => (i ? b : b ^ 8)) : hash)),
      )
      await refused(index + 1, size, leaf, hashes, root)
      await refused(index ^ 2, size, leaf, hashes, root)
      await refused(index, size * 2, leaf, hashes, root)
      await refused(index, size, hashOf('wrong'), hashes, root)
      await refused(index, size, leaf, hashes, bytes(ROOTS[0]!))
      for (const tampered of flipped) await refused(index, size, leaf, tampered, root)
      expect(await refused(index, size, leaf, [...hashes, leaf], root)).toMatch(
        new RegExp(`^the inclusion proof has ${hashes.length + 1} hashes where leaf ${index} of a tree of ${size} leaves needs ${hashes.length}$`),
      )
      expect(await refused(index, size, leaf, hashes.slice(1), root)).toMatch(/needs/)
    }
    expect(await refused(8, 8, bytes(LEAF_HASHES[0]!), [], bytes(ROOTS[8]!))).toBe(
      'leaf 8 cannot be in a tree of 8 leaves',
    )
    expect(await refused(1, 2, bytes(LEAF_HASHES[1]!), [bytes(LEAF_HASHES[1]!)], bytes(ROOTS[2]!))).toMatch(
      /^the inclusion proof leads to root [0-9a-f]{64}, not to the checkpoint’s root fac54203/,
    )
  })
})

// -- a whole record ------------------------------------------------------------------------

async function reasonFor(m: Made, change: (m: Made) => void = () => {}): Promise<string> {
  change(m)
  const verdict = await verifyRecord(m.record, m.expected, m.signer.verifierKey())
  expect(verdict.verified, 'the tampered proof verified').toBe(false)
  return verdict.verified ? '' : verdict.reason
}

const flip = (hex: string) => (hex[0] === '0' ? '1' : '0') + hex.slice(1)

describe('verifyRecord', () => {
  afterEach(() => vi.restoreAllMocks())

  it('verifies a card version up to the signed checkpoint', async () => {
    const m = made()
    const verdict = await verifyRecord(m.record, m.expected, m.signer.verifierKey())
    expect(verdict).toEqual({ verified: true, checkpoint: 7, origin: ORIGIN })
  })

  it('1. refuses a text that is not canonical, or that does not hold what the page shows', async () => {
    expect(await reasonFor(made({ canonicalText: JSON.stringify(STORED_CARD, null, 1) }))).toBe(
      'the record’s text is not in RFC 8785 canonical form',
    )
    expect(await reasonFor(made({ canonicalText: '{"childId":' }))).toBe('the record’s text is not JSON')
    expect(
      await reasonFor(made(), (m) => (m.expected.shown = { ...SHOWN, allergies: ['peanuts', 'cats'] })),
    ).toBe('the record in the log does not hold what the page shows (allergies)')
    expect(
      await reasonFor(made(), (m) => (m.expected.shown = { ...SHOWN, vaccinations: [{ vaccine: 'MMR', date: '2020-05-01', dose: 2 }] })),
    ).toBe('the record in the log does not hold what the page shows (vaccinations[0].dose)')
    expect(await reasonFor(made(), (m) => (m.expected.key = 'card/child-2'))).toBe(
      'the proof is of card/child-1, not of card/child-2',
    )
  })

  it('2. refuses a salt or commitment that does not fit the text', async () => {
    const reason = 'the record and its salt do not make the commitment given'
    expect(await reasonFor(made(), (m) => (m.record.salt = flip(m.record.salt)))).toBe(reason)
    expect(await reasonFor(made(), (m) => (m.record.commitment = flip(m.record.commitment)))).toBe(reason)
    expect(await reasonFor(made(), (m) => (m.record.salt = 'not hex'))).toBe('the salt is not 64 lower-case hex digits')
  })

  it('3. refuses a transaction that did not write that commitment, or is not the one shown', async () => {
    const other = { sealed: { commitment: hashOf('other').toString('hex') } }
    expect(await reasonFor(made({ tx: { write_set: { [`card/${CHILD}`]: other } } }))).toBe(
      'the transaction wrote another commitment to card/child-1',
    )
    expect(await reasonFor(made({ tx: { write_set: { 'card/child-2': other } } }))).toBe(
      'the transaction wrote no sealed value with a commitment to card/child-1',
    )
    expect(await reasonFor(made({ tx: { validation: 'MVCC_READ_CONFLICT' } }))).toBe(
      'the transaction was not valid, so it wrote nothing',
    )
    expect(await reasonFor(made({ tx: { tx_id: 'f'.repeat(32) } }))).toBe(
      `the proof is of another transaction than ${TX_ID}`,
    )
    expect(await reasonFor(made({ tx: { channel: 'report' } }))).toBe('the transaction is not on the medical channel')
    const byWhomAndWhen = 'the transaction was not made by whom and when the page says'
    expect(await reasonFor(made({ tx: { creator: { msp: 'hospitalMSP', uid: 'dr-grey' } } }))).toBe(byWhomAndWhen)
    expect(await reasonFor(made({ tx: { timestamp: '2026-03-01T10:00:01.000000Z' } }))).toBe(byWhomAndWhen)
  })

  it('4. refuses a leaf hash that is not the transaction’s', async () => {
    expect(await reasonFor(made(), (m) => (m.record.inclusion.leafHash = flip(m.record.inclusion.leafHash)))).toBe(
      'the transaction’s text does not hash to the proof’s leaf',
    )
    expect(await reasonFor(made(), (m) => (m.record.txHashInputs += ' '))).toBe(
      'the transaction’s text does not hash to the proof’s leaf',
    )
  })

  it('5. refuses an inclusion proof that does not lead to the checkpoint’s root', async () => {
    expect(
      await reasonFor(made(), (m) => (m.record.inclusion.hashes[1] = flip(m.record.inclusion.hashes[1]!))),
    ).toMatch(/^the inclusion proof leads to root [0-9a-f]{64}, not to the checkpoint’s root/)
    expect(await reasonFor(made(), (m) => (m.record.inclusion.leafIndex = 4))).toMatch(/^the inclusion proof leads to root/)
    expect(await reasonFor(made(), (m) => m.record.inclusion.hashes.pop())).toBe(
      'the inclusion proof has 2 hashes where leaf 5 of a tree of 7 leaves needs 3',
    )
    // A root the note does not sign: the proof and the GraphQL root agree, the signed note does not.
    const m = made()
    const leaves = [hashOf('x'), hashOf('y')]
    m.record.inclusion.checkpoint.note = m.signer.note(7, mth(leaves))
    expect(await reasonFor(m)).toBe(
      'the signed checkpoint is of a tree of 7 leaves with another root than the proof’s',
    )
  })

  it('6. refuses a checkpoint not signed by the pinned log key, or changed after signing', async () => {
    const stranger = new LogSigner()
    expect(
      await reasonFor(made(), (m) => {
        m.record.inclusion.checkpoint.note = stranger.note(7, Buffer.from(m.record.inclusion.checkpoint.rootHash, 'hex'))
      }),
    ).toMatch(/^the checkpoint is not signed by the log’s key healthledger\/hl-0123456789ab\/medical\+[0-9a-f]{8}$/)
    expect(
      await reasonFor(made(), (m) => {
        const note = m.record.inclusion.checkpoint.note
        m.record.inclusion.checkpoint.note = note.replace('\n7\n', '\n8\n')
      }),
    ).toBe('the checkpoint’s signature does not verify with the log’s key')
    const reportLog = new LogSigner('healthledger/hl-0123456789ab/report')
    expect(await reasonFor({ ...made(), signer: reportLog })).toBe(
      'the log’s key healthledger/hl-0123456789ab/report is not that of the medical channel',
    )
  })

  it('6. says so, rather than verifying, where WebCrypto has no Ed25519', async () => {
    const importKey = crypto.subtle.importKey.bind(crypto.subtle)
    vi.spyOn(crypto.subtle, 'importKey').mockImplementation((...args: Parameters<typeof importKey>) => {
      const algorithm = args[2]
      if (typeof algorithm === 'object' && algorithm.name === 'Ed25519') {
        return Promise.reject(new DOMException('Unrecognized name.', 'NotSupportedError'))
      }
      return importKey(...args)
    })
    expect(await reasonFor(made())).toBe(
      'this browser cannot check Ed25519 signatures (its WebCrypto has no Ed25519), so the checkpoint’s signature is unchecked',
    )
  })
})

describe('the parts of a verified read', () => {
  it('reads a verifier key only when its key id fits its name and key', async () => {
    const signer = new LogSigner()
    const key = await parseVerifierKey(`${signer.verifierKey()}\n`)
    expect(key.name).toBe(ORIGIN)
    expect(Buffer.from(key.publicKey)).toEqual(signer.publicKey)
    const material = signer.verifierKey().slice(ORIGIN.length + 10) // after NAME+KEYID+
    await expect(parseVerifierKey(`${ORIGIN}+00000000+${material}`)).rejects.toThrow(
      'the log’s key id does not fit its name and key',
    )
    await expect(parseVerifierKey(`${ORIGIN}+${signer.keyId.toString('hex')}+${material}`)).resolves.toBeTruthy()
    await expect(parseVerifierKey('not a key')).rejects.toThrow('the log’s key is not a verifier key NAME+KEYID+KEY')
  })

  it('ignores a witness’s cosignature on a checkpoint, and needs the log’s own', async () => {
    const log = new LogSigner()
    const witness = new LogSigner('witness.example/w1')
    const body = `${ORIGIN}\n3\n${Buffer.from(ROOTS[3]!, 'hex').toString('base64')}\n`
    const cosigned = log.note(3, Buffer.alloc(0), body) + witness.note(3, Buffer.alloc(0), body).split('\n\n')[1]
    const checkpoint = await verifyCheckpoint(cosigned, await parseVerifierKey(log.verifierKey()))
    expect(checkpoint.treeSize).toBe(3)
    expect(Buffer.from(checkpoint.root).toString('hex')).toBe(ROOTS[3])
    await expect(verifyCheckpoint(body, await parseVerifierKey(log.verifierKey()))).rejects.toThrow(
      'the checkpoint is not a signed note (no signature lines)',
    )
  })

  it('takes the API’s date-times for the ledger’s as the same instant, to the microsecond', () => {
    expect(differingField({ at: '2026-03-01T10:00:00.000000Z' }, { at: '2026-03-01T10:00:00+00:00' })).toBeNull()
    expect(differingField({ at: '2026-03-01T10:00:00.250000Z' }, { at: '2026-03-01T11:00:00.25+01:00' })).toBeNull()
    expect(differingField({ at: '2026-03-01T10:00:00.000001Z' }, { at: '2026-03-01T10:00:00+00:00' })).toBe('at')
    expect(differingField({ a: [1, 2] }, { a: [1] })).toBe('a')
    expect(differingField({ a: null }, { a: null, b: 1 })).toBe('b')
  })

  it('reads canonical text only when it is its own RFC 8785 form', () => {
    expect(canonicalValue('{"a":1,"b":[1.5,"é"]}')).toEqual({ a: 1, b: [1.5, 'é'] })
    expect(() => canonicalValue('{"b":1,"a":2}')).toThrow('not in RFC 8785 canonical form')
    expect(() => canonicalValue('{"a":1.0}')).toThrow('not in RFC 8785 canonical form')
    expect(() => canonicalValue('{"a":"\\u00e9"}')).toThrow('not in RFC 8785 canonical form')
  })
})

describe('pinLogKey', () => {
  it('pins the key on first use, and says when the server later gives another', () => {
    localStorage.clear()
    const key = new LogSigner().verifierKey()
    expect(pinLogKey(localStorage, 'medical', `${key}\n`)).toEqual({ key, firstUse: true })
    expect(localStorage.getItem(`${PIN_PREFIX}medical`)).toBe(key)
    expect(pinLogKey(localStorage, 'medical', key)).toEqual({ key, firstUse: false })
    const other = new LogSigner().verifierKey()
    expect(pinLogKey(localStorage, 'medical', other)).toEqual({ changed: true, pinned: key, served: other })
    expect(localStorage.getItem(`${PIN_PREFIX}medical`)).toBe(key)
    expect(pinLogKey(localStorage, 'report', other)).toEqual({ key: other, firstUse: true })
    expect(keyLabel(key)).toMatch(/^healthledger\/hl-0123456789ab\/medical\+[0-9a-f]{8}$/)
  })
})
