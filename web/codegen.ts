import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import type { CodegenConfig } from '@graphql-codegen/cli'
import { stringifyDocument } from '@urql/core'
import type { DocumentNode } from 'graphql'

// The app's operations, each by the SHA-256 of its text exactly as urql sends it (the hash
// the client puts in extensions.persistedQuery); the build ships this manifest as
// dist/persisted-documents.json, the operations `healthledger serve` registers at start.
const MANIFEST = 'src/gql/persisted-documents.json'
const operations = new Map<string, string>()

function register(document: DocumentNode): undefined {
  // A copy: urql records the printed text on the document it prints.
  const text = stringifyDocument({ ...document })
  operations.set(createHash('sha256').update(text).digest('hex'), text)
  return undefined
}

function writeManifest(): void {
  const sorted = [...operations].sort(([a], [b]) => a.localeCompare(b))
  writeFileSync(MANIFEST, `${JSON.stringify(Object.fromEntries(sorted), null, 2)}\n`)
}

// Typed operations from the published schema: a schema change breaks `npm run build`.
const config: CodegenConfig = {
  schema: '../schema.graphql',
  documents: ['src/**/*.ts', 'src/**/*.vue', '!src/gql/**'],
  ignoreNoDocuments: false,
  generates: {
    'src/gql/': {
      preset: 'client',
      config: {
        scalars: { Date: 'string', DateTime: 'string', JSON: 'unknown' },
        enumsAsTypes: true,
        useTypeImports: true,
        strictScalars: true,
      },
      presetConfig: { fragmentMasking: false, onExecutableDocumentNode: register },
    },
  },
  hooks: { beforeDone: writeManifest },
  silent: true,
}

export default config
