import { execFileSync } from 'node:child_process';
import { buildInbox } from '../../examples/inbox/build.js';
import { ensureBuilt } from './build.js';

/**
 * Fails fast, with the fix, when the machine has no redis-server for the integration
 * tests; compiles dist/ when it is missing or stale (tests run `node dist/main.js`) and
 * bundles the inbox page (`examples/inbox/dist/`).
 */
export default async function setup(): Promise<void> {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error('redis-server is not installed: the tests start their own on a free port (apt-get install redis-server)');
  }
  ensureBuilt();
  // The inbox page the browser tests open, as `npm start` serves it.
  await buildInbox();
}
