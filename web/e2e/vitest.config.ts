import { defineConfig } from 'vitest/config'

// Only the browser story: it needs a live server, so `npm test` (../vite.config.ts) leaves it out.
export default defineConfig({
  test: {
    include: ['e2e/story.test.ts'],
    environment: 'node',
    testTimeout: 120_000,
    // Starting two Chromiums took over Vitest's default 10 s once on a busy machine.
    hookTimeout: 60_000,
    // The story's step and screenshot lines go out as they happen, without per-line headers.
    disableConsoleIntercept: true,
  },
})
