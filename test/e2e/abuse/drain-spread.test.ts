/**
 * SIGTERM on a subscribe process holding many WebSockets: they are closed with 1001
 * spread over the first half of `SHUTDOWN_DRAIN_MS` (so their clients do not all
 * reconnect to the other instances in the same millisecond), an SSE stream ends at once
 * with its documented last event, and the process exits well before the drain time.
 * A real process, real Redis, real sockets.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHeraldProcess, stopAllProcesses } from '../../support/process.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';
import { userToken } from '../../support/tokens.js';
import { acknowledgedSockets, closeAllClients } from '../../support/ws.js';

const SOCKETS = 50;
const DRAIN_MS = 2000;

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedisServer();
});
afterAll(async () => {
  await closeAllClients();
  await stopAllProcesses();
  await redis.stop();
});

describe('SIGTERM with WebSockets open', () => {
  it(`closes ${SOCKETS} WebSockets with 1001 spread over half the drain, ends SSE at once, and exits before the drain is up`, async () => {
    const subscribe = await startHeraldProcess('subscribe', { env: { REDIS_URL: redis.url, SHUTDOWN_DRAIN_MS: String(DRAIN_MS) } });
    const url = `ws://127.0.0.1:${subscribe.subscribePort}/graphql`;
    const sockets = await acknowledgedSockets(url, SOCKETS, userToken('zoe'));
    const sse = await fetch(`http://127.0.0.1:${subscribe.subscribePort}/graphql`, {
      method: 'POST',
      headers: { accept: 'text/event-stream', 'content-type': 'application/json', authorization: `Bearer ${userToken('zoe')}` },
      body: JSON.stringify({ query: 'subscription { onNotificationReceived(userName: "zoe") { text } }' }),
    });
    const sseText = sse.text().then((text) => ({ text, at: performance.now() }));

    const signalled = performance.now();
    const closes = sockets.map((socket) => socket.closed(DRAIN_MS * 2).then((close) => ({ ...close, at: performance.now() - signalled })));
    subscribe.child.kill('SIGTERM');
    const closed = await Promise.all(closes);
    const exit = await subscribe.exited;
    const exitedAfter = performance.now() - signalled;

    expect(closed.map(({ code }) => code)).toEqual(Array(SOCKETS).fill(1001));
    const times = closed.map(({ at }) => at).sort((a, b) => a - b);
    const first = times[0] ?? 0;
    const last = times.at(-1) ?? 0;
    // Spread over about DRAIN_MS / 2: not all in one burst, and none later than the half.
    expect(last - first).toBeGreaterThanOrEqual(DRAIN_MS / 2 - 300);
    expect(last).toBeLessThan(DRAIN_MS / 2 + 500);
    // Evenly: about half of them have closed by the middle of the spread.
    const byMiddle = times.filter((at) => at <= DRAIN_MS / 4 + 100).length;
    expect(byMiddle).toBeGreaterThan(SOCKETS / 4);
    expect(byMiddle).toBeLessThan((SOCKETS * 3) / 4);

    const { text, at } = await sseText;
    expect(text).toContain('SERVICE_UNAVAILABLE');
    expect(text).toContain('event: complete');
    // The stream ended with the signal, not after the WebSockets' spread.
    expect(at - signalled).toBeLessThan(DRAIN_MS / 4);

    expect(exit).toBe(0);
    expect(exitedAfter).toBeLessThan(DRAIN_MS);
  });
});
