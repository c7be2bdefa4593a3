/**
 * The push worker end to end on a real Redis, with local FCM, Web Push and webhook
 * servers: topics fan out to every follower's devices exactly once across three workers,
 * `WHEN_OFFLINE` waits out its grace and skips users seen live, dead devices are removed,
 * Retry-After is honoured, exhausted pushes are dead-lettered and replayed, dry-run sends
 * nothing, and stop() lets sends in flight finish.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decrypt } from 'http_ece';
import { Webhook } from 'standardwebhooks';
import webPush from 'web-push';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readConfig } from '../../../src/config/index.js';
import type { LedgerEvent } from '../../../src/ledger/events.js';
import type { PushNotification } from '../../../src/push/entry.js';
import { createPushWorkerFromConfig } from '../../../src/push/index.js';
import { runReplayCli } from '../../../src/replay.js';
import { createFcmSender } from '../../../src/push/senders/fcm.js';
import type { DeviceSenders } from '../../../src/push/senders/types.js';
import { createWebPushSender } from '../../../src/push/senders/web-push.js';
import { createWebhookSender } from '../../../src/push/senders/webhook.js';
import {
  createBrowserSubscription,
  LOCAL_NETWORKS,
  localNetworkPolicy,
  startFcmStandIn,
  startHttpRecorder,
  type BrowserSubscription,
  type FcmStandIn,
  type HttpRecorder,
} from '../../support/push-servers.js';
import { createPushRig, duplicates, eventually, quietLogger, type PushRig, theStream } from '../../support/push-worker.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';

const WEBHOOK_SECRET = `whsec_${Buffer.alloc(32, 3).toString('base64')}`;
const vapid = { subject: 'mailto:ops@example.com', ...webPush.generateVAPIDKeys() };

let server: RedisServer;
let fcm: FcmStandIn;
let hooks: HttpRecorder;
let pushService: HttpRecorder;
const rigs: PushRig[] = [];
const closing: Array<() => Promise<void>> = [];

beforeAll(async () => {
  [server, fcm, hooks, pushService] = await Promise.all([startRedisServer(), startFcmStandIn(), startHttpRecorder(), startHttpRecorder()]);
});
afterEach(async () => {
  await Promise.all(rigs.splice(0).map((rig) => rig.stopAll()));
  await Promise.all(closing.splice(0).map((close) => close()));
  fcm.answer = () => undefined;
  hooks.answer = () => ({ status: 204 });
  hooks.onRequest = () => undefined;
});
afterAll(async () => {
  await Promise.all([fcm.close(), hooks.close(), pushService.close()]);
  await server.stop();
});

function rig(prefix: string): PushRig {
  const created = createPushRig(server, prefix);
  rigs.push(created);
  return created;
}

function senders(dryRun = false): DeviceSenders {
  const fcmSender = createFcmSender({ serviceAccount: fcm.serviceAccount, baseUrl: fcm.url, tokenUrl: fcm.tokenUrl, dryRun, logger: quietLogger, networkPolicy: localNetworkPolicy });
  closing.push(() => fcmSender.close());
  return {
    FCM: fcmSender,
    WEB_PUSH: createWebPushSender({ vapid, dryRun, logger: quietLogger, networkPolicy: localNetworkPolicy }),
    WEBHOOK: createWebhookSender({ secret: WEBHOOK_SECRET, dryRun, logger: quietLogger, networkPolicy: localNetworkPolicy }),
  };
}

const notification = (id: string, audience: 'USER' | 'TOPIC', to: string): PushNotification => ({
  id, tenant: 'acme', audience, to, text: `news ${id}`, timestamp: 1_700_000_000, sender: 'radio',
});
const fcmTo = (prefix: string): string[] => fcm.messages.filter((m) => m.token.startsWith(prefix)).map((m) => m.token);
const hooksTo = (prefix: string) => hooks.requests.filter((r) => r.path.startsWith(`/${prefix}/`));

describe('push worker', () => {
  it('sends a topic notification to every follower\'s devices exactly once with three workers, and a repeat of it not at all', async () => {
    const r = rig('w1');
    const followers = Array.from({ length: 240 }, (_, i) => `fan${i}`);
    const browsers = new Map<string, BrowserSubscription>();
    for (const [i, user] of followers.entries()) {
      await r.topics.follow('acme', user, 'jazz');
      await r.devices.register('acme', user, { kind: 'FCM', token: `w1-${user}` });
      if (i % 10 === 0) await r.devices.register('acme', user, { kind: 'WEBHOOK', url: `${hooks.url}/w1/${user}` });
      if (i % 40 === 0) {
        const browser = createBrowserSubscription(`${pushService.url}/w1/${user}`);
        browsers.set(user, browser);
        await r.devices.register('acme', user, { kind: 'WEB_PUSH', subscription: browser.json });
      }
    }
    await r.devices.register('acme', 'outsider', { kind: 'FCM', token: 'w1-outsider' });
    const workers = await Promise.all([1, 2, 3].map(() => r.startWorker(senders(), { fanoutPageSize: 25 })));

    await r.queue.enqueue(notification('e1_100-1', 'TOPIC', 'jazz'), 'ALWAYS');
    await eventually(async () => (await r.backlog()) === 0 && fcmTo('w1-').length >= 240, 'the topic fan-out');
    // the same notification again (a publisher's retry): every send marker says sent
    await r.queue.enqueue(notification('e1_100-1', 'TOPIC', 'jazz'), 'ALWAYS');
    await eventually(async () => (await r.backlog()) === 0 && workers.reduce((sum, w) => sum + w.counters.skippedDuplicate, 0) === 240 + 24 + 6, 'the repeat to be skipped');

    const tokens = fcmTo('w1-');
    expect(duplicates(tokens)).toEqual({});
    expect(new Set(tokens)).toEqual(new Set(followers.map((user) => `w1-${user}`)));
    const webhookUsers = hooksTo('w1').map((request) => request.path.split('/')[2] ?? '');
    expect(duplicates(webhookUsers)).toEqual({});
    expect(webhookUsers.sort()).toEqual(followers.filter((_, i) => i % 10 === 0).sort());
    const verifier = new Webhook(WEBHOOK_SECRET);
    for (const request of hooksTo('w1')) {
      const headers = Object.fromEntries(Object.entries(request.headers).map(([name, value]) => [name, String(value)]));
      expect(verifier.verify(request.body.toString('utf8'), headers)).toMatchObject({ id: 'e1_100-1', audience: 'TOPIC', to: 'jazz', tenant: 'acme' });
    }
    const pushes = pushService.requests.filter((request) => request.path.startsWith('/w1/'));
    expect(pushes.map((request) => request.path).sort()).toEqual([...browsers.keys()].map((user) => `/w1/${user}`).sort());
    for (const request of pushes) {
      const browser = browsers.get(request.path.split('/')[2] ?? '');
      const payload = decrypt(request.body, { version: 'aes128gcm', privateKey: browser?.keyPair ?? createBrowserSubscription('').keyPair, authSecret: browser?.authSecret ?? '' });
      expect(JSON.parse(payload.toString('utf8'))).toMatchObject({ id: 'e1_100-1', text: 'news e1_100-1', to: 'jazz' });
    }
    expect(workers.reduce((sum, w) => sum + w.counters.sent, 0)).toBe(240 + 24 + 6);
    expect(workers.filter((w) => w.counters.sent > 0).length).toBeGreaterThan(1); // the pages were shared
  });

  it('WHEN_OFFLINE waits out the grace window and skips a user seen live', async () => {
    const r = rig('w2');
    for (const user of ['ann', 'bob']) await r.devices.register('acme', user, { kind: 'FCM', token: `w2-${user}` });
    const worker = await r.startWorker(senders(), { offlineGraceMs: 400 });
    const sent = performance.now();
    await r.queue.enqueue(notification('e1_200-1', 'USER', 'ann'), 'WHEN_OFFLINE');
    await r.queue.enqueue(notification('e1_200-2', 'USER', 'bob'), 'WHEN_OFFLINE');
    // the subscribe server's mark lands after the publish, inside the grace window
    await r.seenLive.mark('acme', 'e1_200-1', ['ann']);
    await eventually(async () => worker.counters.entriesDone === 2, 'both entries done');
    expect(fcmTo('w2-')).toEqual(['w2-bob']);
    expect(worker.counters.skippedSeenLive).toBe(1);
    const bob = fcm.messages.find((m) => m.token === 'w2-bob');
    expect((bob?.at ?? 0) - sent).toBeGreaterThanOrEqual(390);
  });

  it('removes a device FCM calls UNREGISTERED, and keeps the others', async () => {
    const r = rig('w3');
    await r.devices.register('acme', 'bob', { kind: 'FCM', token: 'w3-old-phone' });
    const kept = await r.devices.register('acme', 'bob', { kind: 'FCM', token: 'w3-new-phone' });
    fcm.unregistered.add('w3-old-phone');
    const worker = await r.startWorker(senders());
    await r.queue.enqueue(notification('e1_300-1', 'USER', 'bob'), 'ALWAYS');
    await eventually(async () => worker.counters.entriesDone === 1, 'the entry done');
    expect((await r.devices.list('acme', 'bob')).map((device) => device.id)).toEqual([kept.id]);
    expect(worker.counters).toMatchObject({ sent: 1, devicesRemoved: 1, deadLettered: 0 });
    expect(await r.deadLetters.size()).toBe(0);
  });

  it('honours Retry-After on a 429, then sends once', async () => {
    const r = rig('w4');
    await r.devices.register('acme', 'bob', { kind: 'FCM', token: 'w4-busy' });
    let calls = 0;
    fcm.answer = (m) => (m.token === 'w4-busy' && ++calls === 1 ? { status: 429, headers: { 'retry-after': '1' }, body: { error: { status: 'RESOURCE_EXHAUSTED' } } } : undefined);
    const worker = await r.startWorker(senders());
    await r.queue.enqueue(notification('e1_400-1', 'USER', 'bob'), 'ALWAYS');
    await eventually(async () => worker.counters.sent === 1, 'the retry sent');
    const attempts = fcm.messages.filter((m) => m.token === 'w4-busy');
    expect(attempts).toHaveLength(2);
    expect((attempts[1]?.at ?? 0) - (attempts[0]?.at ?? 0)).toBeGreaterThanOrEqual(1000);
    expect(worker.counters).toMatchObject({ sent: 1, failed: 1, retried: 1, deadLettered: 0 });
  });

  it('dead-letters a push after its last attempt; a replay sends it once, a second replay not again', async () => {
    const r = rig('w5');
    const device = await r.devices.register('acme', 'bob', { kind: 'WEBHOOK', url: `${hooks.url}/w5/bob` });
    hooks.answer = () => ({ status: 503 });
    const worker = await r.startWorker(senders(), { maxAttempts: 3 });
    await r.queue.enqueue(notification('e1_500-1', 'USER', 'bob'), 'ALWAYS');
    await eventually(async () => worker.counters.deadLettered === 1, 'the push dead-lettered');
    expect(hooksTo('w5')).toHaveLength(3);
    expect(worker.counters.entriesDone).toBe(1);
    expect(await r.backlog()).toBe(0); // acknowledged: the dead letter holds it now
    const [letter] = await r.deadLetters.list(10);
    expect(letter).toMatchObject({ user: 'bob', deviceId: device.id, kind: 'WEBHOOK', attempts: 3, reason: 'webhook answered 503 (gave up after 3 attempts)' });
    expect(letter?.notification.id).toBe('e1_500-1');

    hooks.answer = () => ({ status: 204 });
    const lines: string[] = [];
    const env = { REDIS_URL: server.url, CHANNEL_PREFIX: 'w5' };
    expect(await runReplayCli(['list'], env, (line) => lines.push(line))).toBe(0);
    expect(lines.map((line) => JSON.parse(line) as { id: string }).map((listed) => listed.id)).toEqual([letter?.id]);
    const recorded: Array<{ tenant: string; id: string; event: LedgerEvent }> = [];
    const ledger = { record: (tenant: string, id: string, event: LedgerEvent) => void recorded.push({ tenant, id, event }), flush: () => Promise.resolve() };
    expect(await runReplayCli(['replay'], env, (line) => lines.push(line), { ledger })).toBe(0);
    expect(lines.at(-1)).toBe('replayed 1 dead letter');
    // the operator's replay is in the ledger
    expect(recorded).toEqual([
      { tenant: 'acme', id: 'e1_500-1', event: expect.objectContaining({ type: 'push', status: 'replayed', user: 'bob', device: device.id, kind: 'WEBHOOK', detail: 'webhook answered 503 (gave up after 3 attempts)' }) },
    ]);
    await eventually(async () => worker.counters.entriesDone === 2, 'the replay done');
    expect(hooksTo('w5')).toHaveLength(4);
    expect(await r.deadLetters.size()).toBe(0);
    // the same dead letter replayed again (an operator's double run): the marker says sent
    await r.queue.add({ notification: notification('e1_500-1', 'USER', 'bob'), policy: 'ALWAYS', target: { kind: 'device', user: 'bob', deviceId: device.id }, queuedAt: Date.now(), replay: true });
    await eventually(async () => worker.counters.entriesDone === 3, 'the second replay done');
    expect(hooksTo('w5')).toHaveLength(4);
    expect(worker.counters.skippedDuplicate).toBe(1);
  });

  it('in dry-run, does everything but the send: FCM only validates, webhooks and Web Push get nothing', async () => {
    const r = rig('w6');
    await r.devices.register('acme', 'bob', { kind: 'FCM', token: 'w6-phone' });
    await r.devices.register('acme', 'bob', { kind: 'WEBHOOK', url: `${hooks.url}/w6/bob` });
    await r.devices.register('acme', 'bob', { kind: 'WEB_PUSH', subscription: createBrowserSubscription(`${pushService.url}/w6/bob`).json });
    const worker = await r.startWorker(senders(true));
    await r.queue.enqueue(notification('e1_600-1', 'USER', 'bob'), 'ALWAYS');
    await eventually(async () => worker.counters.entriesDone === 1, 'the entry done');
    expect(fcm.messages.filter((m) => m.token === 'w6-phone').map((m) => m.validateOnly)).toEqual([true]);
    expect(hooksTo('w6')).toEqual([]);
    expect(pushService.requests.filter((request) => request.path.startsWith('/w6/'))).toEqual([]);
    expect(worker.counters).toMatchObject({ sent: 0, dryRun: 3 });
  });

  it('stop() lets a send in flight finish and acknowledges it; a scheduled retry is left in the retry set for another worker', async () => {
    const r = rig('w7');
    await r.devices.register('acme', 'dan', { kind: 'WEBHOOK', url: `${hooks.url}/w7/dan` });
    await r.devices.register('acme', 'cid', { kind: 'WEBHOOK', url: `${hooks.url}/w7/cid` });
    // dan's webhook answers slowly (a send in flight during stop); cid's fails, and its retry is due in a window of an hour
    hooks.answer = (request) => (request.path === '/w7/cid' ? { status: 503 } : { status: 204, delayMs: 300 });
    const danArrived = new Promise<void>((resolve) => (hooks.onRequest = (request) => request.path === '/w7/dan' && resolve()));
    const first = await r.startWorker(senders(), { claimIdleMs: 300, retryWindowMs: 3_600_000 });
    await r.queue.enqueue(notification('e1_700-1', 'USER', 'dan'), 'ALWAYS');
    await r.queue.enqueue(notification('e1_700-2', 'USER', 'cid'), 'ALWAYS');
    await danArrived;
    await eventually(() => first.counters.retried === 1, "cid's first attempt to fail");
    expect(first.counters.sent).toBe(0);
    await first.stop();
    expect(first.counters).toMatchObject({ sent: 1, entriesDone: 2 }); // dan's, finished during stop; cid's, its retry scheduled
    expect(await r.backlog()).toBe(0);
    expect(await r.redis.zcard(r.keys.retrySets[0] ?? '')).toBe(1);
    hooks.answer = () => ({ status: 204 });
    // an hour later by its clock, the retry is due
    const second = await r.startWorker(senders(), { claimIdleMs: 300, now: () => Date.now() + 3_600_000 });
    await eventually(async () => second.counters.sent === 1, "cid's retry sent by the second worker");
    expect(hooksTo('w7').map((request) => request.path)).toEqual(['/w7/dan', '/w7/cid', '/w7/cid']);
    expect(second.counters).toMatchObject({ sent: 1, outcomeUnknown: 0 });
    await eventually(async () => (await r.redis.zcard(r.keys.retrySets[0] ?? '')) === 0, 'the retry settled');
  });

  it('drops a malformed entry instead of retrying it forever', async () => {
    const r = rig('w8');
    const worker = await r.startWorker(senders());
    await r.redis.xadd(theStream(r.keys), '*', 'e', '{"not":"an entry"}');
    await eventually(async () => worker.counters.malformed === 1 && (await r.backlog()) === 0, 'the entry dropped');
  });
});

describe('push worker from the configuration', () => {
  const run = async (prefix: string, env: Record<string, string>) => {
    const r = rig(prefix);
    await r.devices.register('acme', 'bob', { kind: 'FCM', token: `${prefix}-phone` });
    const logged: string[] = [];
    const logger = { info: (line: string) => logged.push(line), warn: () => undefined, error: () => undefined };
    const worker = createPushWorkerFromConfig({
      config: readConfig({ CHANNEL_PREFIX: prefix, PUSH_OFFLINE_GRACE_MS: '0', ...env }),
      redis: server.client(),
      readers: [server.client()],
      logger,
    });
    closing.push(() => worker.stop());
    await worker.start();
    await r.queue.enqueue(notification('e1_900-1', 'USER', 'bob'), 'WHEN_OFFLINE');
    await eventually(async () => worker.counters.entriesDone === 1, 'the entry done');
    return { worker, logged, received: fcmTo(`${prefix}-`) };
  };
  const production = { NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(40) };

  it('outside production, logs what it would send for a kind with no sender configured', async () => {
    const { worker, logged, received } = await run('c1', {});
    expect(received).toEqual([]);
    expect(worker.counters).toMatchObject({ dryRun: 1, sent: 0 });
    expect(logged.some((line) => /would send FCM push for e1_900-1/.test(line))).toBe(true);
  });

  it('in production, skips a kind with no sender configured, and sends for real where configured', async () => {
    const skipped = await run('c2', production);
    expect(skipped.received).toEqual([]);
    expect(skipped.worker.counters).toMatchObject({ skippedUnconfigured: 1, sent: 0, dryRun: 0 });

    const file = join(mkdtempSync(join(tmpdir(), 'herald-push-')), 'service-account.json');
    const { projectId, clientEmail, privateKey } = fcm.serviceAccount;
    writeFileSync(file, JSON.stringify({ type: 'service_account', project_id: projectId, client_email: clientEmail, private_key: privateKey }));
    const configured = await run('c3', { ...production, PUSH_FCM_SERVICE_ACCOUNT_FILE: file, PUSH_FCM_URL: fcm.url, PUSH_FCM_TOKEN_URL: fcm.tokenUrl, PUSH_ALLOWED_NETWORKS: LOCAL_NETWORKS });
    expect(configured.received).toEqual(['c3-phone']);
    expect(fcm.messages.filter((m) => m.token === 'c3-phone').map((m) => m.validateOnly)).toEqual([false]);
    expect(configured.worker.counters).toMatchObject({ sent: 1, dryRun: 0 });
  });
});
