import { execFileSync } from 'node:child_process';
import { ensureBuilt } from './build.js';

/**
 * Fails fast, with the fix, when the machine has no redis-server for the integration
 * tests; compiles dist/ when it is missing or stale (tests run `node dist/main.js`).
 */
export default function setup(): void {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error('redis-server is not installed: the tests start their own on a free port (apt-get install redis-server)');
  }
  ensureBuilt();
}
