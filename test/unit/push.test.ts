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
import { retryDelayMs } from '../../src/push/retry.js';
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

describe('retryDelayMs', () => {
  const policy = { baseMs: 1000, maxMs: 60_000 };
  it('doubles per attempt with equal jitter, up to the cap', () => {
    expect(retryDelayMs(1, undefined, policy, () => 0)).toBe(500);
    expect(retryDelayMs(1, undefined, policy, () => 1)).toBe(1000);
    expect(retryDelayMs(3, undefined, policy, () => 0)).toBe(2000);
    expect(retryDelayMs(30, undefined, policy, () => 1)).toBe(60_000);
  });
  it('waits at least what Retry-After says, and gives up past the cap', () => {
    expect(retryDelayMs(1, 5000, policy, () => 0)).toBe(5000);
    expect(retryDelayMs(1, 5000, policy, () => 1)).toBe(5500);
    expect(retryDelayMs(1, 30_000, policy, () => 1)).toBe(31_000);
    expect(retryDelayMs(1, 61_000, policy, () => 0)).toBeUndefined();
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
