/**
 * The worker's decision path with the users' preferences (`src/push/preference-gate.ts`),
 * through `processEntry` and `processRetry` with in-memory fakes for Redis' parts: over
 * random preference sets, notifications, device kinds and times, every push made respects
 * the preferences at the time it is made, each device's push ends one way only (sent,
 * skipped, or deferred and then decided again at the end of the quiet hours), and the
 * preferences are read once per entry, never for a critical notification.
 */
import { describe, expect, it } from 'vitest';
import type { LedgerEvent, PushEvent } from '../../src/ledger/events.js';
import { CHANNELS, type Channel } from '../../src/preferences/channels.js';
import { createMemoryPreferenceStore, type PreferenceStore } from '../../src/preferences/store.js';
import { createBreakers } from '../../src/push/breaker.js';
import { createPushCounters } from '../../src/push/counters.js';
import type { Device } from '../../src/push/devices.js';
import type { PushEntry, PushNotification } from '../../src/push/entry.js';
import { processEntry, type FanoutDeps } from '../../src/push/fanout.js';
import { createLimiter } from '../../src/push/limiter.js';
import { processRetry } from '../../src/push/retry-send.js';
import type { HeldRetry, RetryRecord } from '../../src/push/retry-set.js';
import type { ClaimResult, MarkerHolder, RetryClaim, SendMarkers } from '../../src/push/send-markers.js';
import type { DeviceSenders, PushMessage } from '../../src/push/senders/types.js';
import { seededRandom as random } from '../support/random.js';


const KINDS = ['FCM', 'WEB_PUSH', 'WEBHOOK', 'APNS'] as const;
const CATEGORIES = ['news', 'billing', 'constructor'];
const ZONES = ['UTC', 'Europe/Paris', 'America/New_York', 'Asia/Kolkata'];

function deviceOf(kind: (typeof KINDS)[number], n: number): Device {
  const common = { id: `d${n}`, registeredAt: 0 };
  switch (kind) {
    case 'FCM':
      return { ...common, kind, token: `t${n}` };
    case 'APNS':
      return { ...common, kind, token: `ab${n}` };
    case 'WEBHOOK':
      return { ...common, kind, url: `https://hooks${n}.example/in` };
    case 'WEB_PUSH':
      return { ...common, kind, subscription: { endpoint: `https://push${n}.example/s`, keys: { p256dh: 'p', auth: 'a' } } };
  }
}

/** The send markers as the Redis scripts keep them, in a Map. */
function memoryMarkers(consumer: string): SendMarkers {
  const markers = new Map<string, string>();
  const key = (tenant: string, id: string, device: string): string => `${tenant}/${id}/${device}`;
  const held = (holder: MarkerHolder): string => ('entryId' in holder ? `inflight:${holder.entryId}:${consumer}` : `inflight:retry-${holder.retry}:${consumer}`);
  const done = (value: string | undefined): boolean => value === 'sent' || value === 'gone' || value === 'dead' || value === 'skipped';
  const move = (k: string, holder: MarkerHolder, to: string): boolean => {
    if (markers.get(k) !== held(holder)) return false;
    markers.set(k, to);
    return true;
  };
  return {
    async claim(tenant, id, device, entryId): Promise<ClaimResult> {
      const current = markers.get(key(tenant, id, device));
      if (current === undefined) {
        markers.set(key(tenant, id, device), `inflight:${entryId}:${consumer}`);
        return 'claimed';
      }
      if (done(current)) return 'done';
      if (current.startsWith(`inflight:${entryId}:`)) return 'orphaned';
      return current.startsWith('retry:') ? 'scheduled' : 'elsewhere';
    },
    async finish(tenant, id, device, state) {
      if (markers.has(key(tenant, id, device))) markers.set(key(tenant, id, device), state);
    },
    async release() {},
    async claimRetry(tenant, id, device): Promise<RetryClaim> {
      const current = markers.get(key(tenant, id, device));
      if (current === undefined) return { state: 'missing' };
      if (done(current)) return { state: 'done' };
      const scheduled = /^retry:(\d+)$/.exec(current);
      if (scheduled) {
        markers.set(key(tenant, id, device), `inflight:retry-${scheduled[1]}:${consumer}`);
        return { state: 'claimed', attempt: Number(scheduled[1]) };
      }
      return { state: 'elsewhere' };
    },
    schedule: async (tenant, id, device, holder, attempt) => move(key(tenant, id, device), holder, `retry:${attempt}`),
    defer: async (tenant, id, device, holder) => move(key(tenant, id, device), holder, 'retry:1'),
  };
}

interface Made {
  readonly user: string;
  readonly device: Device;
  readonly at: number;
}

/** A worker's sends made with fakes: what it sent, scheduled and recorded. */
function fakeWorker(store: PreferenceStore | undefined, devices: ReadonlyMap<string, readonly Device[]>, clock: { now: number }, failures = 0) {
  const sent: Made[] = [];
  /** Sends that failed (the first `failures`), each to be retried. */
  const failed: Made[] = [];
  const scheduled = new Map<string, { record: RetryRecord; at: number }>();
  const events: Array<PushEvent & { readonly id: string }> = [];
  let reads = 0;
  const sender = {
    async send(message: PushMessage, device: Device) {
      if (failed.length < failures) {
        failed.push({ user: message.user, device, at: clock.now });
        return { outcome: 'retry' as const, reason: 'HTTP 503', retryAfterMs: 30_000 };
      }
      sent.push({ user: message.user, device, at: clock.now });
      return { outcome: 'sent' as const, dryRun: false };
    },
  };
  const counting: PreferenceStore | undefined =
    store === undefined
      ? undefined
      : {
          ...store,
          readWithDefaults: (...args) => ((reads += 1), store.readWithDefaults(...args)),
          readManyWithDefaults: (...args) => ((reads += 1), store.readManyWithDefaults(...args)),
        };
  const deps: FanoutDeps = {
    devices: { list: async (_tenant: string, user: string) => devices.get(user) ?? [] } as unknown as FanoutDeps['devices'],
    topics: {} as FanoutDeps['topics'],
    queue: {} as FanoutDeps['queue'],
    deadLetters: { add: async () => expect.fail('nothing is dead-lettered here') } as unknown as FanoutDeps['deadLetters'],
    seenLive: { seen: async () => false } as unknown as FanoutDeps['seenLive'],
    markers: memoryMarkers('w1'),
    senders: Object.fromEntries(KINDS.map((kind) => [kind, sender])) as DeviceSenders,
    limiter: createLimiter({ concurrency: 8, perTenant: 8, perDestination: 8 }),
    breakers: createBreakers(),
    counters: createPushCounters(),
    byKind: {},
    retry: { windowMs: 60_000, maxMs: 60_000, maxAttempts: 3 },
    retries: {
      schedule: async (_shard: number, record: RetryRecord, at: number) => void scheduled.set(`${record.user}/${record.deviceId}`, { record, at }),
      ensure: async () => expect.fail('no marker is left scheduled without its retry'),
      settle: async (held: HeldRetry) => void scheduled.delete(held.member),
    } as unknown as FanoutDeps['retries'],
    shardOf: () => 0,
    pageSize: 500,
    signal: new AbortController().signal,
    preferences: counting,
    ledger: { record: (_tenant: string, id: string, event: LedgerEvent) => void (event.type === 'push' && events.push({ ...event, id })), flush: async () => {} },
    now: () => clock.now,
    logger: { info() {}, warn() {}, error() {} } as unknown as FanoutDeps['logger'],
  };
  return { deps, sent, failed, scheduled, events, reads: () => reads };
}

/** The wall-clock minute of `ms` in `zone`, read independently of the code under test. */
const formats = new Map(ZONES.map((zone) => [zone, new Intl.DateTimeFormat('en-GB', { timeZone: zone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' })]));
function wallMinute(zone: string, ms: number): number {
  const [hours, minutes] = (formats.get(zone)?.format(ms) ?? '').split(':').map(Number);
  return (hours ?? 0) * 60 + (minutes ?? 0);
}
const minuteOf = (hhmm: string): number => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3));
const pad = (minute: number): string => `${String(Math.floor(minute / 60)).padStart(2, '0')}:${String(minute % 60).padStart(2, '0')}`;
function inWindow(start: number, end: number, minute: number): boolean {
  return start < end ? minute >= start && minute < end : minute >= start || minute < end;
}

describe('property: every push the worker makes respects its user’s preferences', () => {
  it('random preference sets, notifications, device kinds and times; deferred pushes decided again when due', async () => {
    const seed = Date.now() % 1_000_000;
    const rng = random(seed);
    let deferredSeen = 0;
    let refusedSeen = 0;
    for (let round = 0; round < 120; round++) {
      const context = `seed ${seed}, round ${round}`;
      const store = createMemoryPreferenceStore();
      const users = ['u1', 'u2', 'u3'].slice(0, 1 + Math.floor(rng.next() * 3));
      const devices = new Map<string, Device[]>();
      let n = 0;
      for (const user of users) {
        devices.set(
          user,
          KINDS.filter(() => rng.next() < 0.7).map((kind) => deviceOf(kind, n++)),
        );
        for (const category of CATEGORIES) {
          for (const channel of CHANNELS) if (rng.next() < 0.25) await store.set('acme', user, category, channel, rng.next() < 0.5);
        }
        if (rng.next() < 0.6) {
          const start = Math.floor(rng.next() * 96) * 15;
          const end = (start + 15 + Math.floor(rng.next() * 94) * 15) % 1440;
          await store.setQuietHours('acme', user, { start: pad(start), end: pad(end), timeZone: rng.pick(ZONES) });
        }
      }
      for (const category of CATEGORIES) if (rng.next() < 0.3) await store.setDefault('acme', category, rng.pick(CHANNELS), rng.next() < 0.5);
      const clock = { now: Date.parse('2026-03-01T00:00:00Z') + Math.floor(rng.next() * 200 * 1440) * 60_000 };
      const critical = rng.next() < 0.15;
      const category = rng.next() < 0.85 ? rng.pick(CATEGORIES) : undefined;
      const ttl = rng.next() < 0.3 ? 60 + Math.floor(rng.next() * 12 * 3600) : undefined;
      const notification: PushNotification = {
        id: `${round}_1-0`,
        tenant: 'acme',
        audience: 'TOPIC',
        to: 'room',
        text: 'hi',
        timestamp: Math.floor(clock.now / 1000),
        sender: 'svc',
        ...(ttl === undefined ? {} : { options: { ttl } }),
        ...(category === undefined ? {} : { category }),
        ...(critical ? { critical: true as const } : {}),
      };
      const entry: PushEntry = { notification, policy: 'ALWAYS', target: { kind: 'followers', topic: 'room', users }, queuedAt: clock.now };
      const worker = fakeWorker(store, devices, clock);

      /** Whether the store's preferences now let `user`'s push to `kind` through, by an oracle of our own. */
      const allowed = async (user: string, kind: Channel, at: number): Promise<'send' | 'refuse' | 'defer'> => {
        if (critical) return 'send';
        const { preferences, defaults } = await store.readWithDefaults('acme', user);
        if (category !== undefined && (preferences.categories.get(category)?.[kind] ?? defaults.get(category)?.[kind] ?? true) === false) return 'refuse';
        const quiet = preferences.quietHours;
        if (quiet !== undefined && inWindow(minuteOf(quiet.start), minuteOf(quiet.end), wallMinute(quiet.timeZone, at))) return 'defer';
        return 'send';
      };
      const expected = new Map<string, 'send' | 'refuse' | 'defer'>();
      for (const user of users) for (const device of devices.get(user) ?? []) expected.set(`${user}/${device.id}`, await allowed(user, device.kind, clock.now));

      expect(await processEntry(worker.deps, entry, { entryId: '1-0', redelivered: false }), context).toBe(true);
      expect(worker.reads(), `${context}: one read per entry, none for a critical one`).toBe(critical ? 0 : 1);
      for (const [member, decision] of expected) {
        const [user, deviceId] = member.split('/');
        const sent = worker.sent.filter((made) => made.user === user && made.device.id === deviceId);
        const events = worker.events.filter((event) => event.user === user && event.device === deviceId);
        const deferral = worker.scheduled.get(member);
        if (decision === 'send') {
          expect(sent, `${context}: ${member} sent`).toHaveLength(1);
          expect(deferral, context).toBeUndefined();
        } else if (decision === 'refuse') {
          refusedSeen += 1;
          expect(sent, `${context}: ${member} refused`).toHaveLength(0);
          expect(deferral, context).toBeUndefined();
          expect(events.map((event) => [event.status, event.detail?.startsWith('refused by preference')]), context).toEqual([['skipped', true]]);
        } else {
          expect(sent, `${context}: ${member} deferred, not sent`).toHaveLength(0);
          const expiresAt = ttl === undefined ? Infinity : (notification.timestamp + ttl) * 1000;
          if (deferral === undefined) {
            // only a deferral past the ttl is dropped
            expect(events.map((event) => event.status), context).toEqual(['skipped']);
            expect(events[0]?.detail, context).toContain('ttl passes');
            continue;
          }
          deferredSeen += 1;
          expect(deferral.at, context).toBeGreaterThan(clock.now);
          expect(deferral.at, context).toBeLessThanOrEqual(Math.min(expiresAt, clock.now + 86_400_000));
          expect(events.map((event) => [event.status, event.nextAttemptAt, event.attempt]), context).toEqual([['retry', deferral.at, undefined]]);
        }
      }
      const held = [...expected.values()].filter((decision) => decision !== 'send').length;
      expect(worker.deps.counters.skippedPreference + worker.deps.counters.deferredQuietHours, context).toBe(held);
      expect(worker.deps.counters.deferredQuietHours, context).toBe(worker.scheduled.size);

      // the deferred come due: maybe the user changed their mind meanwhile; each is decided again
      for (const [member, { record, at }] of [...worker.scheduled]) {
        const device = (devices.get(record.user) ?? []).find((one) => one.id === record.deviceId) as Device;
        if (rng.next() < 0.3 && category !== undefined) await store.set('acme', record.user, category, device.kind, false);
        clock.now = at;
        const now = await allowed(record.user, device.kind, at);
        const sentBefore = worker.sent.length;
        await processRetry(worker.deps, { shard: 0, member, record, leaseUntil: at + 1000 });
        const made = worker.sent.slice(sentBefore);
        if (now === 'send') expect(made.map((one) => one.device.id), `${context}: ${member} sent when due`).toEqual([record.deviceId]);
        else expect(made, `${context}: ${member} not sent when due (${now})`).toHaveLength(0);
      }
      // every push made respects the preferences at the time it was made
      for (const made of worker.sent) expect(await allowed(made.user, made.device.kind, made.at), `${context}: ${made.user}/${made.device.id}`).toBe('send');
      // and a redelivery of the entry makes no push again
      const before = worker.sent.length;
      await processEntry(worker.deps, entry, { entryId: '1-0', redelivered: true });
      expect(worker.sent.length, `${context}: a redelivery sends nothing`).toBe(before);
    }
    expect(deferredSeen, `seed ${seed}`).toBeGreaterThan(0);
    expect(refusedSeen, `seed ${seed}`).toBeGreaterThan(0);
  });

  it('a worker without a preference store reads nothing and pushes every device', async () => {
    const clock = { now: Date.parse('2026-06-01T21:30:00Z') };
    const device = deviceOf('FCM', 1);
    const worker = fakeWorker(undefined, new Map([['u1', [device]]]), clock);
    const notification: PushNotification = { id: '1_1-0', tenant: 'acme', audience: 'USER', to: 'u1', text: 'hi', timestamp: 1, sender: 's', category: 'news' };
    await processEntry(worker.deps, { notification, policy: 'ALWAYS', target: { kind: 'user', user: 'u1' }, queuedAt: 0 }, { entryId: '1-0', redelivered: false });
    expect(worker.sent.map((made) => made.device.id)).toEqual(['d1']);
  });
});

describe('a failed send, retried, is decided again on the preferences of then', () => {
  const notification: PushNotification = { id: '7_1-0', tenant: 'acme', audience: 'USER', to: 'u1', text: 'hi', timestamp: 1, sender: 's', category: 'news' };
  const entry: PushEntry = { notification, policy: 'ALWAYS', target: { kind: 'user', user: 'u1' }, queuedAt: 0 };
  const device = deviceOf('WEBHOOK', 1);
  /** The entry sent at 21:59:45 UTC, its send failing with "retry after 30 s". */
  const failedAt2159 = async (store: PreferenceStore) => {
    const clock = { now: Date.parse('2026-06-01T21:59:45Z') };
    const worker = fakeWorker(store, new Map([['u1', [device]]]), clock, 1);
    await processEntry(worker.deps, entry, { entryId: '1-0', redelivered: false });
    expect(worker.failed.map((made) => made.at)).toEqual([clock.now]);
    const retry = worker.scheduled.get('u1/d1');
    expect(retry?.record.attempt).toBe(2);
    return { worker, clock, retry: retry as { record: RetryRecord; at: number } };
  };
  const due = (worker: ReturnType<typeof fakeWorker>, clock: { now: number }, scheduled: { record: RetryRecord; at: number }) => {
    clock.now = scheduled.at;
    return processRetry(worker.deps, { shard: 0, member: 'u1/d1', record: scheduled.record, leaseUntil: scheduled.at + 1000 });
  };

  it('one that comes due inside the quiet hours is not sent then: it waits for their end, and is sent once then', async () => {
    const store = createMemoryPreferenceStore();
    await store.setQuietHours('acme', 'u1', { start: '22:00', end: '07:00', timeZone: 'UTC' });
    const { worker, clock, retry } = await failedAt2159(store);
    expect(retry.at).toBeGreaterThanOrEqual(Date.parse('2026-06-01T22:00:15Z'));

    await due(worker, clock, retry);
    expect(worker.sent).toEqual([]);
    const deferred = worker.scheduled.get('u1/d1');
    expect(deferred).toMatchObject({ at: Date.parse('2026-06-02T07:00:00Z'), record: { attempt: 1 } });
    expect(worker.events.at(-1)).toMatchObject({ status: 'retry', nextAttemptAt: Date.parse('2026-06-02T07:00:00Z'), detail: expect.stringContaining('deferred: quiet hours') });

    await due(worker, clock, deferred as { record: RetryRecord; at: number });
    expect(worker.sent.map((made) => new Date(made.at).toISOString())).toEqual(['2026-06-02T07:00:00.000Z']);
    expect(worker.scheduled.size).toBe(0);
  });

  it('one whose category the user muted meanwhile is skipped when it comes due', async () => {
    const store = createMemoryPreferenceStore();
    const { worker, clock, retry } = await failedAt2159(store);
    await store.set('acme', 'u1', 'news', 'WEBHOOK', false);
    await due(worker, clock, retry);
    expect(worker.sent).toEqual([]);
    expect(worker.scheduled.size).toBe(0);
    expect(worker.events.at(-1)).toMatchObject({ status: 'skipped', detail: expect.stringContaining('refused by preference') });
    expect(worker.deps.counters.skippedPreference).toBe(1);
  });
});
