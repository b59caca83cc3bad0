import { readFileSync } from 'node:fs'
import vue from '@vitejs/plugin-vue'
import type { Plugin } from 'vite'
import { defineConfig } from 'vitest/config'

// The manifest of the app's operations that codegen writes (codegen.ts), shipped as
// dist/persisted-documents.json: the operations `healthledger serve` registers at start.
function persistedDocuments(): Plugin {
  return {
    name: 'persisted-documents',
    apply: 'build',
    generateBundle() {
      const manifest = new URL('src/gql/persisted-documents.json', import.meta.url)
      this.emitFile({
        type: 'asset',
        fileName: 'persisted-documents.json',
        source: readFileSync(manifest, 'utf8'),
      })
    },
  }
}

// Two pages: the app (index.html) and GraphiQL (graphiql.html, which the API serves at GET /graphql).
export default defineConfig({
  plugins: [vue(), persistedDocuments()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    // GraphiQL's editor (Monaco) is one 2.8 MB module; only the GraphiQL page loads it.
    chunkSizeWarningLimit: 3000,
    rolldownOptions: {
      input: { app: 'index.html', graphiql: 'graphiql.html' },
      // GraphiQL's React packages mark modules "use client", which only server rendering reads.
      checks: { moduleLevelDirective: false },
    },
  },
  test: {
    environment: 'happy-dom',
    include: ['tests/**/*.test.ts'],
  },
})
