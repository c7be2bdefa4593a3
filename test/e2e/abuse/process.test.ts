/** The process helper itself: a production-like subscribe server starts, answers and stops on SIGTERM. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startHeraldProcess, stopAllProcesses } from '../../support/process.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedisServer();
});
afterAll(async () => {
  await stopAllProcesses();
  await redis.stop();
});

it('starts a subscribe server process on port 0 and stops it with SIGTERM', async () => {
  const herald = await startHeraldProcess('subscribe', { env: { REDIS_URL: redis.url } });
  expect(herald.subscribePort).toBeGreaterThan(0);
  const ready = await fetch(`http://127.0.0.1:${herald.subscribePort}/readyz`);
  expect(ready.status).toBe(200);
  expect(herald.rss()).toBeGreaterThan(10 * 1024 * 1024);
  expect(await herald.stop()).toBe(0);
});
