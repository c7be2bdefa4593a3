/**
 * The preference store on a real Redis: what the push worker reads with
 * `readWithDefaults` (one round trip), the per-user bound under concurrent changes, the
 * version that grows with each change, quiet hours kept and removed, and keys inside the
 * tenant's hash tag.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPreferenceKeys } from '../../src/preferences/keys.js';
import { createRedisPreferenceStore } from '../../src/preferences/redis-store.js';
import type { PreferenceStore } from '../../src/preferences/store.js';
import { redisClientOptions } from '../../src/redis/connection.js';
import { freePort, startRedisServer, type RedisServer } from '../support/redis-server.js';

let redis: RedisServer;
let store: PreferenceStore;
const keys = createPreferenceKeys('herald');

beforeAll(async () => {
  redis = await startRedisServer();
  store = createRedisPreferenceStore({ redis: redis.client(), keys, maxCategoriesPerUser: 3 });
});
afterAll(async () => {
  await redis?.stop();
});

describe('the Redis preference store', () => {
  it('holds the per-user bound under concurrent changes, and counts every change', async () => {
    const results = await Promise.allSettled(['a', 'b', 'c', 'd', 'e', 'f'].map((category) => store.set('acme', 'ann', category, 'FCM', false)));
    const refused = results.filter((result) => result.status === 'rejected');
    expect(results.length - refused.length).toBe(3);
    for (const result of refused) expect((result as PromiseRejectedResult).reason).toMatchObject({ code: 'LIMIT_EXCEEDED' });
    // A category already held may still change, and quiet hours do not count.
    const held = (await store.read('acme', 'ann')).categories.keys().next().value as string;
    await store.setQuietHours('acme', 'ann', { start: '22:00', end: '07:00', timeZone: 'Europe/Paris' });
    const after = await store.set('acme', 'ann', held, 'IN_APP', false);
    expect(after.version).toBe(5);
    expect(after.categories.get(held)).toEqual({ FCM: false, IN_APP: false });
    expect(after.quietHours).toEqual({ start: '22:00', end: '07:00', timeZone: 'Europe/Paris' });
    expect((await store.setQuietHours('acme', 'ann', undefined)).quietHours).toBeUndefined();
  });

  it('reads a user’s preferences and the tenant’s defaults together, each tenant’s apart', async () => {
    await store.setDefault('acme', 'digest', 'WEB_PUSH', false);
    await store.set('acme', 'bob', 'digest', 'IN_APP', true);
    const { preferences, defaults } = await store.readWithDefaults('acme', 'bob');
    expect(Object.fromEntries(preferences.categories)).toEqual({ digest: { IN_APP: true } });
    expect(Object.fromEntries(defaults)).toEqual({ digest: { WEB_PUSH: false } });
    expect((await store.readWithDefaults('other', 'bob')).defaults.size).toBe(0);
    const many = await store.readManyWithDefaults('acme', ['bob', 'nobody']);
    expect(Object.fromEntries(many.preferences.get('bob')?.categories ?? [])).toEqual({ digest: { IN_APP: true } });
    expect(many.preferences.get('nobody')?.version).toBe(0);
    expect(Object.fromEntries(many.defaults)).toEqual({ digest: { WEB_PUSH: false } });
    expect(keys.user('acme', 'bob')).toBe('herald:{acme}:prefs:user:bob');
    expect(await redis.client().exists('herald:{acme}:prefs:user:bob', 'herald:{acme}:prefs:defaults')).toBe(2);
  });

  it('reads the version and quiet hours with them, for a user who has set nothing too', async () => {
    await store.set('acme', 'dee', 'promo', 'FCM', false);
    await store.setQuietHours('acme', 'dee', { start: '21:00', end: '08:00', timeZone: 'Asia/Tokyo' });
    const { preferences } = await store.readWithDefaults('acme', 'dee');
    expect(preferences).toMatchObject({ version: 2, quietHours: { start: '21:00', end: '08:00', timeZone: 'Asia/Tokyo' } });
    expect(Object.fromEntries(preferences.categories)).toEqual({ promo: { FCM: false } });
    const none = await store.readWithDefaults('acme', 'nobody');
    expect(none.preferences).toMatchObject({ version: 0, quietHours: undefined });
    expect(none.preferences.categories.size).toBe(0);
  });

  it('says Redis is unavailable when it cannot read, at once (no queue, no retry)', async () => {
    // Herald's client rules on a port nobody listens on: a command fails as soon as it is sent.
    const down = new Redis({ ...redisClientOptions(10_000), port: await freePort(), retryStrategy: () => null });
    down.on('error', () => undefined);
    try {
      const unreachable = createRedisPreferenceStore({ redis: down, keys });
      const started = Date.now();
      await expect(unreachable.readWithDefaults('acme', 'bob')).rejects.toMatchObject({ code: 'SERVICE_UNAVAILABLE', message: 'Redis is unavailable: preferences cannot be read or changed' });
      expect(Date.now() - started).toBeLessThan(5000); // not the 10 s command timeout
    } finally {
      down.disconnect();
    }
  });

  it('refuses a bad argument naming it, and changes nothing', async () => {
    await expect(store.set('acme', 'cat', 'promo', 'PIGEON', false)).rejects.toThrow(/^channel must be one of/);
    await expect(store.set('acme', 'cat', 'promo', 'FCM', 'no')).rejects.toThrow(/^enabled must be a boolean/);
    expect((await store.read('acme', 'cat')).version).toBe(0);
  });
});
