import { execFileSync } from 'node:child_process';

/** Fails fast, with the fix, when the machine has no redis-server for the integration tests. */
export default function checkRedisServer(): void {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error('redis-server is not installed: the tests start their own on a free port (apt-get install redis-server)');
  }
}
