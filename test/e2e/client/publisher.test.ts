/**
 * `createHeraldPublisher` through a TCP proxy that resets every connection to the publish
 * server every few tens of milliseconds: requests die before the server reads them and
 * after it stored the notification but before the answer got back. Every `send` that
 * resolves was stored exactly once (a subscriber counts each text); one that rejects says
 * whether it may have been stored, and one that says no was not.
 */
import WebSocket from 'ws';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createHeraldClient, createHeraldPublisher, HeraldSendError, type HeraldClient } from '../../../packages/client/src/index.js';
import { closeAllFaultProxies, startFaultProxy, type FaultProxy } from '../../support/fault-proxy.js';
import { PATIENCE_MS } from '../../support/patience.js';
import { startHeraldProcess, stopAllProcesses } from '../../support/process.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';
import { serviceToken, userToken } from '../../support/tokens.js';
import { createWaiters } from '../../support/waiters.js';

let redis: RedisServer;
let proxy: FaultProxy;
let subscriber: HeraldClient;
const delivered = new Map<string, number>();
const waiters = createWaiters();

beforeAll(async () => {
  redis = await startRedisServer();
  const env = { REDIS_URL: redis.url };
  const [subscribe, publish] = await Promise.all([startHeraldProcess('subscribe', { env }), startHeraldProcess('publish', { env })]);
  proxy = await startFaultProxy(publish.publishPort ?? 0);
  subscriber = createHeraldClient({ url: `ws://127.0.0.1:${subscribe.subscribePort}/graphql`, token: () => userToken('paula'), webSocketImpl: WebSocket });
  subscriber.onNotification((notification) => {
    delivered.set(notification.text, (delivered.get(notification.text) ?? 0) + 1);
    waiters.wake();
  });
  subscriber.onStatus(() => waiters.wake());
  await waiters.until(() => subscriber.status === 'live' || undefined, 'the subscriber live', PATIENCE_MS);
});

afterAll(async () => {
  subscriber?.close();
  await closeAllFaultProxies();
  await stopAllProcesses();
  await redis?.stop();
});

it('every resolved send is delivered once; a rejected one says whether it may have been stored', { timeout: 180_000 }, async () => {
  let attempts = 0;
  const countingFetch: typeof fetch = (input, init) => (attempts++, fetch(input, init));
  const publishUrl = `http://127.0.0.1:${proxy.port}/graphql`;
  const publisher = createHeraldPublisher({ url: publishUrl, token: serviceToken(), fetch: countingFetch, deadlineMs: 60_000, attemptTimeoutMs: 2_000 });

  // First, before any fault: a refusal stores nothing, and says so.
  const refusal = await createHeraldPublisher({ url: publishUrl, token: userToken('not-a-service') }).send({ to: 'paula', text: 'refused', push: 'NEVER' }).catch((error: unknown) => error);
  expect(refusal).toBeInstanceOf(HeraldSendError);
  expect((refusal as HeraldSendError).code).toBe('FORBIDDEN');
  expect((refusal as HeraldSendError).mayHaveBeenStored).toBe(false);

  // Phase 1: resets every 25 ms while 150 sends run, 5 at a time.
  const cutter = setInterval(() => proxy.fault({ kind: 'cut' }), 25);
  const resolved: string[] = [];
  const rejected: { text: string; error: HeraldSendError }[] = [];
  const texts = Array.from({ length: 150 }, (_, n) => `send ${n}`);
  const queue = [...texts];
  await Promise.all(
    Array.from({ length: 5 }, async () => {
      for (let text = queue.shift(); text !== undefined; text = queue.shift()) {
        try {
          await publisher.send({ to: 'paula', text, push: 'NEVER' });
          resolved.push(text);
        } catch (error) {
          if (!(error instanceof HeraldSendError)) throw error;
          rejected.push({ text, error });
        }
      }
    }),
  );
  clearInterval(cutter);
  // The resets hit: many attempts were retried.
  expect(attempts).toBeGreaterThan(texts.length);

  // Phase 2: the network to the publish server drops everything, and the deadline is short:
  // the sends reject, and say they may have been stored (the requests went out, no answer came).
  proxy.fault({ kind: 'drop' });
  const hurried = createHeraldPublisher({ url: publishUrl, token: serviceToken(), deadlineMs: 1_500, attemptTimeoutMs: 500 });
  const dropped = await Promise.allSettled(['dropped 0', 'dropped 1', 'dropped 2'].map((text) => hurried.send({ to: 'paula', text, push: 'NEVER' })));
  proxy.fault({ kind: 'cut' });
  proxy.forward();
  for (const outcome of dropped) {
    expect(outcome.status).toBe('rejected');
    const error = (outcome as PromiseRejectedResult).reason as HeraldSendError;
    expect(error).toBeInstanceOf(HeraldSendError);
    expect(error.mayHaveBeenStored).toBe(true);
    expect(error.idempotencyKey).not.toBe('');
  }

  // Every resolved send arrives once; then nothing more (no second copy) arrives on top.
  await waiters.until(() => resolved.every((text) => delivered.has(text)) || undefined, 'every resolved send delivered', PATIENCE_MS, () => `${delivered.size} delivered of ${resolved.length} resolved`);
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  console.log(`publisher through resets: ${resolved.length} resolved, ${rejected.length} rejected, ${attempts} attempts, ${proxy.accepted} connections`);
  expect(resolved.length + rejected.length).toBe(texts.length);
  expect(resolved.filter((text) => delivered.get(text) !== 1)).toEqual([]);
  expect([...delivered.values()].filter((count) => count !== 1)).toEqual([]);
  // A rejection that says "not stored" was not.
  expect(rejected.filter(({ text, error }) => !error.mayHaveBeenStored && delivered.has(text)).map(({ text }) => text)).toEqual([]);
  expect(delivered.has('refused')).toBe(false);
});
