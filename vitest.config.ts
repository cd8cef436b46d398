import { defaultClientConditions, defaultServerConditions } from 'vite';
import { defineConfig } from 'vitest/config';

/**
 * Inside the workspace every @tradesync package resolves to its TypeScript sources (the
 * `@tradesync/source` export condition), so tests never need a build and never run a stale
 * one. Node-side tests resolve through the SSR conditions, browser-side code through the
 * client ones; setting either replaces Vite's defaults, hence the spreads.
 */
const SOURCE = '@tradesync/source';

export default defineConfig({
  resolve: { conditions: [SOURCE, ...defaultClientConditions] },
  ssr: { resolve: { conditions: [SOURCE, ...defaultServerConditions] } },
  test: {
    include: ['packages/*/test/**/*.test.{ts,tsx}', 'e2e/**/*.test.ts', 'clients/*/tests/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Tests start real servers on free ports; two cores do not gain from many forks.
    maxWorkers: 2,
  },
});
