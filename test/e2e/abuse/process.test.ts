/**
 * The process helper itself: a production-like subscribe server starts, answers and stops
 * on SIGTERM; and a second SIGTERM while it drains (npm forwards a process group's signal
 * to its script, which the group's signal reached already) does not cut the drain.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { waitFor } from '../../support/herald.js';
import { startHeraldProcess, stopAllProcesses } from '../../support/process.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';
import { userToken } from '../../support/tokens.js';
import { acknowledgedSockets, closeAllClients } from '../../support/ws.js';

/** WebSockets held through the stop: their 1001s are spread over half the drain, so it lasts. */
const SOCKETS = 20;
const DRAIN_MS = 10_000;

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedisServer();
});
afterAll(async () => {
  await closeAllClients();
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

it('drains through a second SIGTERM sent while it stops: one stop, every WebSocket closed with 1001, exit 0', async () => {
  const herald = await startHeraldProcess('subscribe', { env: { REDIS_URL: redis.url, SHUTDOWN_DRAIN_MS: String(DRAIN_MS) } });
  const url = `ws://127.0.0.1:${herald.subscribePort}/graphql`;
  const sockets = await acknowledgedSockets(url, SOCKETS, userToken('zoe'));
  let closedSoFar = 0;
  const closes = sockets.map((socket) => socket.closed(DRAIN_MS * 2).then((close) => ((closedSoFar += 1), close)));
  herald.child.kill('SIGTERM');
  await waitFor(() => herald.output().includes('SIGTERM: stopping'), 'the first SIGTERM handled');
  // Mid-drain (its closes take DRAIN_MS / 2): Node's default for an unheard SIGTERM is to die at once.
  expect(closedSoFar, 'the drain was over before the second signal').toBeLessThan(SOCKETS);
  expect(herald.child.kill('SIGTERM')).toBe(true);
  expect(await herald.exited).toBe(0);
  expect((await Promise.all(closes)).map(({ code }) => code)).toEqual(Array(SOCKETS).fill(1001));
  expect(herald.output().match(/SIGTERM: stopping/g)).toHaveLength(1);
});
