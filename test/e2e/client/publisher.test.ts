/**
 * `createHeraldPublisher` through a TCP proxy that resets every connection to the publish
 * server every 120 ms, with 20 ms latency each way: requests die before the server reads
 * them and after it stored the notification but before the answer got back. Every `send` that
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

  // Phase 1: 20 ms each way and resets every 120 ms while 60 sends run, 5 at a time: many
  // requests die on the way in, and many after the server stored the notification.
  proxy.fault({ kind: 'latency', ms: 20 });
  const cutter = setInterval(() => proxy.fault({ kind: 'cut' }), 120);
  const resolved: string[] = [];
  /** Sends answered `duplicate`: a retry found the notification an earlier attempt stored (its answer was lost). */
  let repeatsAnswered = 0;
  const rejected: { text: string; error: HeraldSendError }[] = [];
  const texts = Array.from({ length: 60 }, (_, n) => `send ${n}`);
  const queue = [...texts];
  await Promise.all(
    Array.from({ length: 5 }, async () => {
      for (let text = queue.shift(); text !== undefined; text = queue.shift()) {
        try {
          const result = await publisher.send({ to: 'paula', text, push: 'NEVER' });
          if (result.duplicate) repeatsAnswered++;
          resolved.push(text);
        } catch (error) {
          if (!(error instanceof HeraldSendError)) throw error;
          rejected.push({ text, error });
        }
      }
    }),
  );
  // And batches, through the same resets.
  for (let batch = 0; batch < 2; batch++) {
    const batchTexts = Array.from({ length: 10 }, (_, n) => `batch ${batch}.${n}`);
    const results = await publisher.sendMany(batchTexts.map((text) => ({ to: 'paula', text, push: 'NEVER' as const })));
    expect(results).toHaveLength(10);
    repeatsAnswered += results.filter((result) => result.duplicate).length;
    resolved.push(...batchTexts);
  }
  clearInterval(cutter);
  proxy.forward();
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
  console.log(`publisher through resets: ${resolved.length} resolved (${repeatsAnswered} answered by a retry that found it stored), ${rejected.length} rejected, ${attempts} attempts, ${proxy.accepted} connections`);
  expect(resolved.length + rejected.length).toBe(texts.length + 20);
  // The resets hit stored notifications' answers too: retries found them stored.
  expect(repeatsAnswered).toBeGreaterThan(0);
  expect(resolved.filter((text) => delivered.get(text) !== 1)).toEqual([]);
  expect([...delivered.values()].filter((count) => count !== 1)).toEqual([]);
  // A rejection that says "not stored" was not.
  expect(rejected.filter(({ text, error }) => !error.mayHaveBeenStored && delivered.has(text)).map(({ text }) => text)).toEqual([]);
  expect(delivered.has('refused')).toBe(false);
});
