/**
 * The push worker's pure parts: device validation, stream entry parsing, keys, retry
 * waits and the concurrency limiter.
 */
import { createECDH } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { InvalidNameError } from '../../src/names/index.js';
import { deviceId, InvalidDeviceError, parseDeviceInput } from '../../src/push/devices.js';
import { decodePushEntry, encodePushEntry, type PushEntry } from '../../src/push/entry.js';
import { createPushKeys } from '../../src/push/keys.js';
import { createLimiter } from '../../src/push/limiter.js';
import { expiresAtOf, nextAttempt, retryStep, type RetryPolicy } from '../../src/push/retry.js';
import { parseRetryAfter } from '../../src/push/senders/http.js';

const p256dh = (() => {
  const browser = createECDH('prime256v1');
  browser.generateKeys();
  return browser.getPublicKey().toString('base64url');
})();
const auth = Buffer.alloc(16, 2).toString('base64url');

function fieldOf(input: unknown, allowInsecureUrls = false): string {
  try {
    parseDeviceInput(input, { allowInsecureUrls });
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidDeviceError);
    return (error as InvalidDeviceError).field;
  }
  throw new Error(`accepted ${JSON.stringify(input)}`);
}

describe('parseDeviceInput', () => {
  it('accepts each kind', () => {
    expect(parseDeviceInput({ kind: 'FCM', token: 'fX1:APA91b-abc_def' })).toEqual({ kind: 'FCM', token: 'fX1:APA91b-abc_def' });
    expect(parseDeviceInput({ kind: 'WEB_PUSH', subscription: { endpoint: 'https://push.example.com/s/1', keys: { p256dh, auth } } })).toEqual({
      kind: 'WEB_PUSH',
      subscription: { endpoint: 'https://push.example.com/s/1', keys: { p256dh, auth } },
    });
    expect(parseDeviceInput({ kind: 'WEBHOOK', url: 'https://relay.example.com/hook' })).toEqual({ kind: 'WEBHOOK', url: 'https://relay.example.com/hook' });
    expect(parseDeviceInput({ kind: 'WEBHOOK', url: 'http://127.0.0.1:9/hook' }, { allowInsecureUrls: true })).toMatchObject({ url: 'http://127.0.0.1:9/hook' });
  });

  it('names the bad field', () => {
    expect(fieldOf(null)).toBe('device');
    expect(fieldOf({ kind: 'SMS' })).toBe('device.kind');
    expect(fieldOf({ kind: 'FCM' })).toBe('device.token');
    expect(fieldOf({ kind: 'FCM', token: 'has space' })).toBe('device.token');
    expect(fieldOf({ kind: 'FCM', token: 'x'.repeat(4097) })).toBe('device.token');
    expect(fieldOf({ kind: 'FCM', token: 'ok', url: 'https://a.example' })).toBe('device.url');
    expect(fieldOf({ kind: 'WEBHOOK', url: 'http://relay.example.com/hook' })).toBe('device.url'); // http only in development
    expect(fieldOf({ kind: 'WEBHOOK', url: 'ftp://relay.example.com/' }, true)).toBe('device.url');
    expect(fieldOf({ kind: 'WEBHOOK', url: 'https://user:pw@relay.example.com/' })).toBe('device.url');
    expect(fieldOf({ kind: 'WEBHOOK', url: `https://a.example/${'x'.repeat(2048)}` })).toBe('device.url');
    // internal addresses are refused by the device store, with the network policy (network-policy.test.ts, stores.test.ts)
    expect(parseDeviceInput({ kind: 'WEBHOOK', url: 'https://93.184.216.34/h' })).toMatchObject({ kind: 'WEBHOOK' });
    expect(fieldOf({ kind: 'WEB_PUSH', subscription: 'x' })).toBe('device.subscription');
    expect(fieldOf({ kind: 'WEB_PUSH', subscription: { endpoint: 'https://p.example/1' } })).toBe('device.subscription.keys');
    expect(fieldOf({ kind: 'WEB_PUSH', subscription: { endpoint: 'https://p.example/1', keys: { p256dh: 'AAAA', auth } } })).toBe('device.subscription.keys.p256dh');
    expect(fieldOf({ kind: 'WEB_PUSH', subscription: { endpoint: 'https://p.example/1', keys: { p256dh, auth: 'AAAA' } } })).toBe('device.subscription.keys.auth');
  });

  it('refuses a Web Push key that is not a point on P-256, naming the field, and an auth secret that is not 16 bytes', () => {
    const endpoint = 'https://push.example.com/s/1';
    const raw = Buffer.from(p256dh, 'base64url');
    const offCurve = Buffer.from(raw);
    offCurve[64] = (offCurve[64] ?? 0) ^ 1; // y no longer fits x
    const refusal = (keys: { p256dh: string; auth: string }): string => {
      try {
        parseDeviceInput({ kind: 'WEB_PUSH', subscription: { endpoint, keys } });
      } catch (error) {
        return (error as Error).message;
      }
      return 'accepted';
    };
    expect(refusal({ p256dh: offCurve.toString('base64url'), auth })).toBe('device.subscription.keys.p256dh is not a point on the P-256 curve');
    expect(refusal({ p256dh: Buffer.concat([Buffer.from([4]), Buffer.alloc(64, 1)]).toString('base64url'), auth })).toBe('device.subscription.keys.p256dh is not a point on the P-256 curve');
    expect(refusal({ p256dh: Buffer.concat([Buffer.from([2]), raw.subarray(1, 33)]).toString('base64url'), auth })).toBe(
      'device.subscription.keys.p256dh must be an uncompressed P-256 public key (65 bytes)',
    );
    expect(refusal({ p256dh, auth: Buffer.alloc(15, 2).toString('base64url') })).toBe('device.subscription.keys.auth must be 16 bytes');
    expect(refusal({ p256dh, auth })).toBe('accepted');
  });

  it('gives one address one id, whatever else differs', () => {
    expect(deviceId({ kind: 'FCM', token: 'a' })).toBe(deviceId({ kind: 'FCM', token: 'a' }));
    expect(deviceId({ kind: 'FCM', token: 'a' })).not.toBe(deviceId({ kind: 'FCM', token: 'b' }));
    expect(deviceId({ kind: 'FCM', token: 'a' })).toMatch(/^[A-Za-z0-9_-]{22}$/);
  });
});

describe('push stream entries', () => {
  const entry: PushEntry = {
    notification: { id: 'e1_1-1', tenant: 'acme', audience: 'TOPIC', to: 'jazz', text: 'New episode', timestamp: 1, sender: 'radio' },
    policy: 'WHEN_OFFLINE',
    target: { kind: 'followers', topic: 'jazz', users: ['ann', 'bob'] },
    queuedAt: 1000,
  };

  it('round-trips, and refuses what is not an entry', () => {
    expect(decodePushEntry(encodePushEntry(entry))).toEqual(entry);
    expect(decodePushEntry(['e', 'not json'])).toBeUndefined();
    expect(decodePushEntry(['x', JSON.stringify(entry)])).toBeUndefined();
    expect(decodePushEntry(encodePushEntry({ ...entry, target: { kind: 'followers', topic: 'jazz', users: ['ann', 'bad:name'] } }))).toBeUndefined();
    expect(decodePushEntry(encodePushEntry({ ...entry, notification: { ...entry.notification, tenant: '{other}' } }))).toBeUndefined();
    expect(decodePushEntry(['e', JSON.stringify({ ...entry, policy: 'NEVER' })])).toBeUndefined();
  });
});

describe('push keys', () => {
  const keys = createPushKeys('herald');
  it('keeps a tenant\'s keys in its hash slot and refuses names that could escape it', () => {
    expect(keys.devices('acme', 'bob')).toBe('herald:{acme}:push:devices:bob');
    expect(keys.followers('acme', 'jazz')).toBe('herald:{acme}:push:followers:jazz');
    expect(keys.seenLive('acme', 'e1_1-1', 'bob')).toBe('herald:{acme}:push:seen:e1_1-1:bob');
    expect(() => keys.devices('acme', 'bob:x')).toThrow(InvalidNameError);
    expect(() => keys.followers('a}c', 'jazz')).toThrow(InvalidNameError);
    expect(() => keys.sendMarker('acme', 'e1:1', 'dev')).toThrow(InvalidNameError);
  });
});

describe('the retry schedule', () => {
  const policy: RetryPolicy = { windowMs: 1_800_000, maxMs: 1_800_000, maxAttempts: 8 };
  const t0 = 1_700_000_000_000;
  /** Every retry's time for one push whose every attempt fails, each drawn with `random`. */
  const schedule = (random: () => number): number[] => {
    const times: number[] = [];
    let now = t0;
    for (let attempt = 1; ; attempt++) {
      const next = nextAttempt({ attempt, firstFailedAt: t0, now }, policy, random);
      if (next.kind !== 'retry') {
        expect(next.kind).toBe('exhausted');
        return times;
      }
      expect(next.attempt).toBe(attempt + 1);
      times.push(next.at);
      now = next.at;
    }
  };

  it('has 7 steps that double and together fill the window', () => {
    const steps = [1, 2, 3, 4, 5, 6, 7].map((retry) => retryStep(retry, policy));
    expect(steps[0]?.fromMs).toBe(0);
    expect(steps[6]?.toMs).toBeCloseTo(1_800_000, 6);
    for (const [i, step] of steps.entries()) {
      expect(step.toMs - step.fromMs).toBeCloseTo((1_800_000 * 2 ** i) / 127, 6);
      if (i > 0) expect(step.fromMs).toBeCloseTo(steps[i - 1]?.toMs ?? NaN, 6);
    }
  });

  it('draws each retry inside its own step, in order, the whole inside the window', () => {
    for (const random of [() => 0, () => 0.5, () => 0.999_999, Math.random]) {
      const times = schedule(random);
      expect(times).toHaveLength(7);
      for (const [i, at] of times.entries()) {
        const { fromMs, toMs } = retryStep(i + 1, policy);
        expect(at).toBeGreaterThanOrEqual(t0 + Math.floor(fromMs));
        expect(at).toBeLessThanOrEqual(t0 + Math.ceil(toMs));
        if (i > 0) expect(at).toBeGreaterThanOrEqual(times[i - 1] ?? Infinity);
      }
      expect((times.at(-1) ?? Infinity) - t0).toBeLessThanOrEqual(1_800_000);
    }
    // full jitter: the draw spans the whole step, not half of it
    expect(schedule(() => 0)[2]).toBe(t0 + Math.ceil(retryStep(3, policy).fromMs));
    expect(schedule(() => 0.999_999)[2]).toBeGreaterThan(t0 + retryStep(3, policy).toMs - 10);
  });

  it('never schedules before now (a late attempt goes at once), nor waits longer than maxMs', () => {
    const late = nextAttempt({ attempt: 1, firstFailedAt: t0, now: t0 + 600_000 }, policy, () => 0);
    expect(late).toEqual({ kind: 'retry', attempt: 2, at: t0 + 600_000 });
    const capped = nextAttempt({ attempt: 7, firstFailedAt: t0, now: t0 }, { ...policy, maxMs: 60_000 }, () => 1);
    expect(capped).toEqual({ kind: 'retry', attempt: 8, at: t0 + 60_000 });
  });

  it('moves the next attempt to no earlier than a Retry-After, and gives up on one past maxMs', () => {
    expect(nextAttempt({ attempt: 1, firstFailedAt: t0, now: t0, retryAfterMs: 120_000 }, policy, () => 0)).toEqual({ kind: 'retry', attempt: 2, at: t0 + 120_000 });
    // a Retry-After shorter than the drawn time changes nothing
    const drawn = nextAttempt({ attempt: 5, firstFailedAt: t0, now: t0, retryAfterMs: 1000 }, policy, () => 0);
    expect(drawn).toEqual({ kind: 'retry', attempt: 6, at: t0 + Math.ceil(retryStep(5, policy).fromMs) });
    expect(nextAttempt({ attempt: 1, firstFailedAt: t0, now: t0, retryAfterMs: 1_800_001 }, policy)).toEqual({ kind: 'retry_after_too_long' });
  });

  it("never schedules past the notification's ttl", () => {
    const notification = { timestamp: t0 / 1000, options: { ttl: 60 } };
    const expiresAt = expiresAtOf(notification);
    expect(expiresAt).toBe(t0 + 60_000);
    expect(expiresAtOf({ timestamp: t0 / 1000 })).toBeUndefined();
    // the first retry falls inside the first step (0 to 14 s): before the ttl
    expect(nextAttempt({ attempt: 1, firstFailedAt: t0, now: t0, expiresAt }, policy, () => 1)).toMatchObject({ kind: 'retry', attempt: 2 });
    // the fourth step starts at 99 s: past it
    expect(nextAttempt({ attempt: 4, firstFailedAt: t0, now: t0 + 50_000, expiresAt }, policy, () => 0)).toEqual({ kind: 'ttl_passed', expiredAt: t0 + 60_000 });
    // a Retry-After past it too
    expect(nextAttempt({ attempt: 1, firstFailedAt: t0, now: t0, expiresAt, retryAfterMs: 61_000 }, policy, () => 0)).toEqual({ kind: 'ttl_passed', expiredAt: t0 + 60_000 });
    // ttl 0: now or never
    expect(nextAttempt({ attempt: 1, firstFailedAt: t0, now: t0, expiresAt: expiresAtOf({ timestamp: t0 / 1000, options: { ttl: 0 } }) }, policy, () => 0.5)).toMatchObject({ kind: 'ttl_passed' });
  });

  it('gives up after maxAttempts; one attempt means no retry', () => {
    expect(nextAttempt({ attempt: 8, firstFailedAt: t0, now: t0 }, policy)).toEqual({ kind: 'exhausted' });
    expect(nextAttempt({ attempt: 1, firstFailedAt: t0, now: t0 }, { ...policy, maxAttempts: 1 })).toEqual({ kind: 'exhausted' });
    // two attempts: the one retry may fall anywhere in the window
    expect(retryStep(1, { ...policy, maxAttempts: 2 })).toEqual({ fromMs: 0, toMs: 1_800_000 });
  });

  it('reads Retry-After in seconds or as a date', () => {
    expect(parseRetryAfter('7')).toBe(7000);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4000)).toBe(6000);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(null)).toBeUndefined();
  });
});

describe('createLimiter', () => {
  it('holds at most its limit; the rest wait in order', async () => {
    const limiter = createLimiter({ concurrency: 2, perTenant: 2, perDestination: 2 });
    const key = { tenant: 'acme', destination: undefined };
    const a = await limiter.acquire(key);
    await limiter.acquire(key);
    const order: string[] = [];
    const third = limiter.acquire(key).then((release) => (order.push('third'), release));
    const fourth = limiter.acquire(key).then((release) => (order.push('fourth'), release));
    expect(limiter.active).toBe(2);
    expect(limiter.waiting).toBe(2);
    await Promise.resolve();
    expect(order).toEqual([]);
    a();
    a(); // a second call of one release frees nothing more
    const releaseThird = await third;
    expect(order).toEqual(['third']);
    expect(limiter.active).toBe(2);
    expect(limiter.waiting).toBe(1);
    releaseThird();
    await fourth;
    expect(order).toEqual(['third', 'fourth']);
  });
});
