/**
 * Retries over time, on a real Redis with real workers and local providers: the schedule
 * lives in the retry set, so a provider down for minutes loses nothing (the test drives
 * the workers' clock instead of sleeping), a killed worker's retries resume in the next
 * worker without a duplicate send (and one killed mid-send leaves "outcome unknown"
 * dead letters, never a second send), and the ledger tells each device's steps.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { LedgerEvent, LedgerWriter, PushEvent } from '../../../src/ledger/events.js';
import type { PushNotification } from '../../../src/push/entry.js';
import { createFcmSender } from '../../../src/push/senders/fcm.js';
import { createWebhookSender } from '../../../src/push/senders/webhook.js';
import { localNetworkPolicy, startFcmStandIn, startHttpRecorder, type FcmStandIn, type HttpRecorder } from '../../support/push-servers.js';
import { createPushRig, duplicates, eventually, quietLogger, type PushRig } from '../../support/push-worker.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';

const WORKER = fileURLToPath(new URL('../../support/push-worker-process.ts', import.meta.url));
const WEBHOOK_SECRET = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
const MINUTE = 60_000;

let server: RedisServer;
let hooks: HttpRecorder;
let fcm: FcmStandIn;
const rigs: PushRig[] = [];
const children: ChildProcess[] = [];
const closing: Array<() => Promise<void>> = [];

beforeAll(async () => {
  [server, hooks, fcm] = await Promise.all([startRedisServer(), startHttpRecorder(), startFcmStandIn({ delayMs: 20 })]);
});
afterEach(async () => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  await Promise.all(rigs.splice(0).map((rig) => rig.stopAll()));
  await Promise.all(closing.splice(0).map((close) => close()));
  hooks.answer = () => ({ status: 201 });
  hooks.onRequest = () => undefined;
  fcm.answer = () => undefined;
  fcm.onMessage = () => undefined;
});
afterAll(async () => {
  await Promise.all([hooks.close(), fcm.close()]);
  await server.stop();
});

function rig(prefix: string): PushRig {
  const created = createPushRig(server, prefix);
  rigs.push(created);
  return created;
}

/** A ledger that keeps every event in an array. */
function collectingLedger(): LedgerWriter & { readonly events: Array<{ tenant: string; id: string; event: LedgerEvent }> } {
  const events: Array<{ tenant: string; id: string; event: LedgerEvent }> = [];
  return { events, record: (tenant, id, event) => void events.push({ tenant, id, event }), flush: () => Promise.resolve() };
}

/** The push events of one notification's device, oldest first. */
const pushEventsOf = (ledger: ReturnType<typeof collectingLedger>, id: string): PushEvent[] =>
  ledger.events.filter((one) => one.id === id && one.event.type === 'push').map((one) => one.event as PushEvent);

const webhook = () => ({ WEBHOOK: createWebhookSender({ secret: WEBHOOK_SECRET, dryRun: false, logger: quietLogger, networkPolicy: localNetworkPolicy }) });
/** Published now, or `ageSeconds` ago; with a push `ttl` if given. */
const notification = (id: string, to: string, ttl?: number, ageSeconds = 0): PushNotification => ({
  id, tenant: 'acme', audience: 'USER', to, text: `news ${id}`, timestamp: Math.floor(Date.now() / 1000) - ageSeconds, sender: 'radio', ...(ttl === undefined ? {} : { options: { ttl } }),
});

describe('retries over time', () => {
  it('a provider answering 503 for 5 minutes (by the workers\' clock) still gets every push, once, when it recovers', async () => {
    const r = rig('rt1');
    const set = r.keys.retrySets[0] ?? '';
    let offset = 0;
    const clock = (): number => Date.now() + offset;
    const outageEnds = clock() + 5 * MINUTE;
    const users = Array.from({ length: 12 }, (_, i) => `u${i}`);
    for (const user of users) await r.devices.register('acme', user, { kind: 'WEBHOOK', url: `${hooks.url}/rt1/${user}` });
    const seen: Array<{ path: string; at: number; ok: boolean }> = [];
    hooks.answer = (request) => {
      const at = clock();
      seen.push({ path: request.path, at, ok: at >= outageEnds });
      return at >= outageEnds ? { status: 204 } : { status: 503 };
    };
    const ledger = collectingLedger();
    const worker = await r.startWorker(webhook(), { now: clock, ledger, retryWindowMs: 30 * MINUTE, retryMaxMs: 30 * MINUTE, maxAttempts: 8, breakerFailures: 1000 });
    const startedAt = clock();
    for (const [i, user] of users.entries()) await r.queue.enqueue(notification(`e1_${i}-1`, user), 'ALWAYS');
    // every entry done at once: first attempts failed, retries scheduled (the entries wait for no retry)
    await eventually(async () => worker.counters.entriesDone === users.length && (await r.redis.zcard(set)) === users.length, 'every first attempt failed and its retry scheduled');
    expect(await r.backlog()).toBe(0);

    // drive the clock: jump to the next due retry, wait until the worker has dealt with what is due
    const nextDue = async (): Promise<number | undefined> => {
      const [, score] = await r.redis.zrange(set, 0, 0, 'WITHSCORES');
      return score === undefined ? undefined : Number(score);
    };
    for (let jumps = 0; ; jumps++) {
      expect(jumps, 'the schedule ends within its attempts').toBeLessThan(users.length * 8);
      const due = await nextDue();
      if (due === undefined) break;
      offset = Math.max(offset, due - Date.now());
      await eventually(async () => {
        const next = await nextDue();
        return worker.load().retriesHeld === 0 && (next === undefined || next > clock());
      }, 'the due retries dealt with');
    }

    expect(worker.counters).toMatchObject({ sent: users.length, deadLettered: 0, outcomeUnknown: 0 });
    expect(await r.deadLetters.size()).toBe(0);
    for (const user of users) {
      const mine = seen.filter((one) => one.path === `/rt1/${user}`);
      // failed through the outage, then delivered once, and nothing after
      expect(mine.filter((one) => one.ok)).toHaveLength(1);
      expect(mine.at(-1)?.ok).toBe(true);
      // attempt 1 and retries 1 to 4 (their steps end 3.5 minutes into the window) fell in the outage
      expect(mine.filter((one) => !one.ok).length).toBeGreaterThanOrEqual(5);
      // inside the window of 30 minutes from the first failure
      expect((mine.at(-1)?.at ?? Infinity) - startedAt).toBeLessThanOrEqual(30 * MINUTE + 1000);
    }
    // the ledger tells each device's steps: failed → retry … → accepted
    const events = pushEventsOf(ledger, 'e1_0-1');
    expect(events.map((event) => event.status).join(' ')).toMatch(/^queued failed retry (queued failed retry )+queued accepted$/);
    const retries = events.filter((event) => event.status === 'retry').map((event) => event.nextAttemptAt ?? 0);
    expect(retries).toEqual([...retries].sort((a, b) => a - b));
    expect(events.filter((event) => event.status === 'failed').every((event) => event.reason === 'provider_error' && event.detail === 'webhook answered 503')).toBe(true);
    expect(await r.redis.hlen(r.keys.retryData[0] ?? '')).toBe(0);
  });

  it('records each device\'s steps in the ledger: accepted at once, gone → removed, dead-lettered after its last attempt, cut at the ttl', async () => {
    const r = rig('rt2');
    const paths = { fine: '/rt2/fine', gone: '/rt2/gone', down: '/rt2/down', brief: '/rt2/brief' };
    for (const [user, path] of Object.entries(paths)) await r.devices.register('acme', user, { kind: 'WEBHOOK', url: `${hooks.url}${path}` });
    hooks.answer = (request) => ({ status: request.path === paths.fine ? 204 : request.path === paths.gone ? 410 : 503 });
    const ledger = collectingLedger();
    const worker = await r.startWorker(webhook(), { ledger, maxAttempts: 2, retryWindowMs: 200, breakerFailures: 1000 });
    await r.queue.enqueue(notification('e2_1-1', 'fine'), 'ALWAYS');
    await r.queue.enqueue(notification('e2_2-1', 'gone'), 'ALWAYS');
    await r.queue.enqueue(notification('e2_3-1', 'down'), 'ALWAYS');
    await eventually(() => worker.counters.sent === 1 && worker.counters.devicesRemoved === 1 && worker.counters.deadLettered === 1, 'each settled');
    const statuses = (id: string) => pushEventsOf(ledger, id).map((event) => event.status);
    expect(statuses('e2_1-1')).toEqual(['queued', 'accepted']);
    expect(statuses('e2_2-1')).toEqual(['queued', 'failed', 'removed']);
    expect(pushEventsOf(ledger, 'e2_2-1')[1]).toMatchObject({ reason: 'unregistered', attempt: 1, user: 'gone', kind: 'WEBHOOK' });
    expect(statuses('e2_3-1')).toEqual(['queued', 'failed', 'retry', 'queued', 'failed', 'dead_lettered']);
    expect(pushEventsOf(ledger, 'e2_3-1').at(-1)).toMatchObject({ attempt: 2, detail: 'webhook answered 503 (gave up after 2 attempts)' });

    // a ttl of 5 s, published 10 s ago: no retry, dead-lettered saying the ttl passed
    await r.queue.enqueue(notification('e2_4-1', 'brief', 5, 10), 'ALWAYS');
    await eventually(() => worker.counters.deadLettered === 2, 'the brief one dead-lettered');
    expect(statuses('e2_4-1')).toEqual(['queued', 'failed', 'dead_lettered']);
    const letters = await r.deadLetters.list(10);
    expect(letters.map((one) => one.notification.id)).toEqual(['e2_3-1', 'e2_4-1']);
    expect(letters[1]?.reason).toMatch(/^webhook answered 503 \(its ttl passed at .* before the next attempt\)$/);
    expect(hooks.requests.filter((request) => request.path === paths.brief)).toHaveLength(1);
    expect(worker.counters.retried).toBe(1);
  });

  it("a killed worker's retries resume in the next worker without a duplicate send; one killed mid-send leaves outcome unknown, never a second send", async () => {
    const r = rig('rt3');
    const set = r.keys.retrySets[0] ?? '';
    const users = Array.from({ length: 30 }, (_, i) => `k${i}`);
    for (const user of users) await r.devices.register('acme', user, { kind: 'FCM', token: `rt3-${user}` });
    let down = true;
    /** The tokens FCM accepted, in order (answered 200, whether or not the worker lived to read it). */
    const accepted: string[] = [];
    fcm.answer = (message) => {
      if (!message.token.startsWith('rt3-')) return undefined;
      if (down) return { status: 503, headers: { 'retry-after': '600' }, body: { error: { status: 'UNAVAILABLE' } } };
      accepted.push(message.token);
      return undefined;
    };
    const start = async (consumer: string, env: Record<string, string>): Promise<{ child: ChildProcess; exited: Promise<unknown> }> => {
      const child = fork(WORKER, [], {
        execArgv: ['--import', 'tsx'],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        env: {
          ...process.env,
          REDIS_URL: server.url,
          PUSH_TEST_PREFIX: 'rt3',
          PUSH_TEST_FCM_URL: fcm.url,
          PUSH_TEST_TOKEN_URL: fcm.tokenUrl,
          PUSH_TEST_SERVICE_ACCOUNT: JSON.stringify(fcm.serviceAccount),
          PUSH_TEST_CONSUMER: consumer,
          PUSH_CLAIM_IDLE_MS: '2000',
          PUSH_RETRY_WINDOW_MS: String(30 * MINUTE),
          PUSH_RETRY_POLL_MS: '50',
          ...env,
        },
      });
      children.push(child);
      const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code)));
      await new Promise<void>((resolve, reject) => {
        child.once('message', () => resolve());
        child.once('exit', (code) => reject(new Error(`worker exited with ${code} before it was ready`)));
      });
      return { child, exited };
    };

    // 1. the first worker's attempts all fail (503, Retry-After 10 minutes): each retry scheduled, then it is killed
    const first = await start('first', {});
    for (const [i, user] of users.entries()) await r.queue.enqueue(notification(`e3_${i}-1`, user), 'ALWAYS');
    await eventually(async () => (await r.redis.zcard(set)) === users.length && (await r.backlog()) === 0, 'every retry scheduled, every entry done');
    const markers = await Promise.all(users.map(async (user, i) => r.redis.get(r.keys.sendMarker('acme', `e3_${i}-1`, (await r.devices.list('acme', user))[0]?.id ?? ''))));
    expect(new Set(markers)).toEqual(new Set(['retry:2']));
    first.child.kill('SIGKILL');
    expect(await first.exited).toBe('SIGKILL');

    // 2. the provider is back; the next worker, an hour later by its clock, sends the retries four at a
    //    time, and is killed after ten were accepted, with sends in flight
    down = false;
    const killed = new Promise<void>((resolve) => {
      fcm.onMessage = () => {
        if (accepted.length >= 10) resolve();
      };
    });
    const second = await start('second', { PUSH_TEST_CLOCK_OFFSET_MS: String(60 * MINUTE), PUSH_CONCURRENCY: '4' });
    await killed;
    second.child.kill('SIGKILL');
    expect(await second.exited).toBe('SIGKILL');
    fcm.onMessage = () => undefined;
    const acceptedBySecond = accepted.length;
    expect(acceptedBySecond).toBeLessThan(users.length); // some were left to resume

    // 3. a third worker, later still by its clock (the second's leases passed), finishes the rest
    const sender = createFcmSender({ serviceAccount: fcm.serviceAccount, baseUrl: fcm.url, tokenUrl: fcm.tokenUrl, dryRun: false, logger: quietLogger, networkPolicy: localNetworkPolicy });
    closing.push(() => sender.close());
    const third = await r.startWorker({ FCM: sender }, { now: () => Date.now() + 120 * MINUTE, retryPollMs: 20 });
    await eventually(async () => (await r.redis.zcard(set)) === 0, 'every retry settled', 20_000);

    expect(duplicates(accepted)).toEqual({});
    const letters = await r.deadLetters.list(100);
    expect(letters.every((letter) => letter.reason.startsWith('outcome unknown: the worker sending it stopped mid-send'))).toBe(true);
    const unknown = new Set(letters.map((letter) => `rt3-${letter.user}`));
    const received = new Set(accepted);
    // every device got its push once, or its push is dead-lettered as unknown: none missing
    expect(users.filter((user) => !received.has(`rt3-${user}`) && !unknown.has(`rt3-${user}`))).toEqual([]);
    // at most the second worker's sends in flight at the kill are unknown
    expect(unknown.size).toBeLessThanOrEqual(4);
    expect(third.counters.outcomeUnknown).toBe(unknown.size);
    // the rest resumed in the third: all but those the second sent or left unknown
    expect(third.counters.sent).toBeGreaterThanOrEqual(users.length - acceptedBySecond - unknown.size);
    expect(third.counters.sent).toBeGreaterThan(0);
  });

  it('renews the lease while a retry is sent: a send longer than the lease is not taken by another worker', async () => {
    const r = rig('rt4');
    await r.devices.register('acme', 'slow', { kind: 'WEBHOOK', url: `${hooks.url}/rt4/slow` });
    let calls = 0;
    // the first attempt fails; the retry takes 1.5 s, five leases of 300 ms
    hooks.answer = (request) => (request.path !== '/rt4/slow' ? { status: 204 } : ++calls === 1 ? { status: 503 } : { status: 204, delayMs: 1500 });
    const options = { claimIdleMs: 300, retryWindowMs: 100, breakerFailures: 1000 };
    const workers = await Promise.all([r.startWorker(webhook(), options), r.startWorker(webhook(), options)]);
    await r.queue.enqueue(notification('e4_1-1', 'slow'), 'ALWAYS');
    await eventually(() => workers.reduce((sum, worker) => sum + worker.counters.sent, 0) === 1, 'the slow retry sent');
    expect(calls).toBe(2);
    expect(workers.reduce((sum, worker) => sum + worker.counters.outcomeUnknown, 0)).toBe(0);
    expect(await r.deadLetters.size()).toBe(0);
    await eventually(async () => (await r.redis.zcard(r.keys.retrySets[0] ?? '')) === 0, 'the retry settled');
  });

  it('the send marker names the attempt: a retry whose stored copy is of an earlier attempt is sent as the later one, not skipped', async () => {
    const r = rig('rt5');
    const device = await r.devices.register('acme', 'late', { kind: 'WEBHOOK', url: `${hooks.url}/rt5/late` });
    hooks.answer = () => ({ status: 204 });
    // as a worker leaves them when it dies between moving the marker (attempt 3) and the set (still attempt 2)
    const pushed = notification('e5_1-1', 'late');
    await r.redis.set(r.keys.sendMarker('acme', pushed.id, device.id), 'retry:3', 'PX', 60_000);
    const member = `acme/${pushed.id}/${device.id}`;
    await r.redis.zadd(r.keys.retrySets[0] ?? '', Date.now(), member);
    await r.redis.hset(r.keys.retryData[0] ?? '', member, JSON.stringify({ notification: pushed, user: 'late', deviceId: device.id, attempt: 2, firstFailedAt: Date.now() }));
    const ledger = collectingLedger();
    const worker = await r.startWorker(webhook(), { ledger });
    await eventually(() => worker.counters.sent === 1 && pushEventsOf(ledger, pushed.id).some((event) => event.status === 'accepted'), 'the retry sent and recorded');
    expect(pushEventsOf(ledger, pushed.id).map((event) => [event.status, event.attempt])).toEqual([['queued', 3], ['accepted', 3]]);
    expect(worker.counters.skippedDuplicate).toBe(0);
    expect(await r.redis.get(r.keys.sendMarker('acme', pushed.id, device.id))).toBe('sent');
  });
});
