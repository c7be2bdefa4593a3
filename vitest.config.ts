import { createRequire } from 'node:module';
import { defineConfig } from 'vitest/config';

const require = createRequire(import.meta.url);

/**
 * Three projects, as the tests are laid out: `unit` (no Redis, no servers, no build:
 * `npm run test:unit`), `contract` (the broker contract over both brokers, on a
 * redis-server of its own) and `e2e` (real servers, processes, clients and Redis; it
 * needs `dist/`, which its global setup builds when stale). `npm test` runs all three.
 */
export default defineConfig({
  resolve: {
    // Node resolves `graphql` to its CommonJS build (it has no "exports" map); Vite
    // would pick index.mjs. One copy only, as at run time, or schemas from
    // graphql-yoga fail graphql's instanceof checks.
    alias: [{ find: /^graphql$/, replacement: require.resolve('graphql') }],
  },
  test: {
    // Generous: CI shares its machine, and these only bound how long a broken test hangs
    // (test/support/patience.ts). A test's own bounds tell right from wrong.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      { extends: true, test: { name: 'contract', include: ['test/contract/**/*.test.ts'] } },
      { extends: true, test: { name: 'e2e', include: ['test/e2e/**/*.test.ts'], globalSetup: ['test/support/global-setup.ts'] } },
    ],
  },
});
