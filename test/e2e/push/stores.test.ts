/**
 * Devices, topics, the push stream, dead letters and seen-live marks, on a real Redis:
 * tenant isolation, the per-user limits, topic followers read in pages, and every
 * stream held to its bound.
 */
import { Redis as IORedis, type Redis } from 'ioredis';
import { redisClientOptions } from '../../../src/redis/connection.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDeadLetters } from '../../../src/push/dead-letters.js';
import { createDeviceStore, DeviceLimitError, InvalidDeviceError } from '../../../src/push/devices.js';
import type { PushNotification } from '../../../src/push/entry.js';
import { createPushKeys } from '../../../src/push/keys.js';
import { createPushQueue } from '../../../src/push/queue.js';
import { createSeenLive } from '../../../src/push/seen-live.js';
import { createTopicStore, TopicLimitError } from '../../../src/push/topics.js';
import { localNetworkPolicy } from '../../support/push-servers.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';
import { theStream } from '../../support/push-worker.js';

let server: RedisServer;
let redis: Redis;
beforeAll(async () => {
  server = await startRedisServer();
  redis = server.client();
});
afterAll(() => server.stop());

const notification = (id: string, to = 'bob'): PushNotification => ({ id, tenant: 'acme', audience: 'USER', to, text: 'hi', timestamp: 1, sender: 'billing' });

describe('device store', () => {
  it('registers, lists and removes a user\'s devices inside the tenant', async () => {
    const keys = createPushKeys('t1');
    const devices = createDeviceStore({ redis, keys, allowInsecureUrls: true, networkPolicy: localNetworkPolicy });
    const phone = await devices.register('acme', 'bob', { kind: 'FCM', token: 'tok-1' });
    const hook = await devices.register('acme', 'bob', { kind: 'WEBHOOK', url: 'http://127.0.0.1:9/hook' });
    expect((await devices.list('acme', 'bob')).map((device) => device.id)).toEqual([phone.id, hook.id]);
    expect(await devices.list('globex', 'bob')).toEqual([]); // same name, other tenant
    expect(await redis.exists('t1:{acme}:push:devices:bob')).toBe(1);
    expect(await devices.remove('acme', 'bob', phone.id)).toBe(true);
    expect(await devices.remove('acme', 'bob', phone.id)).toBe(false);
    expect((await devices.list('acme', 'bob')).map((device) => device.kind)).toEqual(['WEBHOOK']);
    await expect(devices.register('acme', 'bob', { kind: 'FCM', token: '' })).rejects.toThrow(InvalidDeviceError);
  });

  it('refuses one device past the per-user limit; re-registering a held device does not count', async () => {
    const devices = createDeviceStore({ redis, keys: createPushKeys('t2'), maxDevicesPerUser: 3 });
    for (const token of ['a', 'b', 'c']) await devices.register('acme', 'ann', { kind: 'FCM', token });
    await expect(devices.register('acme', 'ann', { kind: 'FCM', token: 'a' })).resolves.toMatchObject({ token: 'a' });
    await expect(devices.register('acme', 'ann', { kind: 'FCM', token: 'd' })).rejects.toThrow(DeviceLimitError);
    // concurrent registrations cannot overshoot the limit together
    const racing = await Promise.allSettled(['e', 'f', 'g'].map((token) => devices.register('acme', 'cid', { kind: 'FCM', token })));
    const more = await Promise.allSettled(['h', 'i'].map((token) => devices.register('acme', 'cid', { kind: 'FCM', token })));
    expect([...racing, ...more].filter((result) => result.status === 'fulfilled')).toHaveLength(3);
    expect(await devices.list('acme', 'cid')).toHaveLength(3);
  });
});

describe('topic store', () => {
  it('follows and unfollows, per user and per topic', async () => {
    const topics = createTopicStore({ redis, keys: createPushKeys('t3') });
    await topics.follow('acme', 'bob', 'jazz');
    await topics.follow('acme', 'bob', 'jazz');
    await topics.follow('acme', 'bob', 'news');
    expect(await topics.following('acme', 'bob')).toEqual(['jazz', 'news']);
    expect(await topics.unfollow('acme', 'bob', 'jazz')).toBe(true);
    expect(await topics.unfollow('acme', 'bob', 'jazz')).toBe(false);
    const followers: string[] = [];
    for await (const page of topics.followers('acme', 'jazz', 100)) followers.push(...page);
    expect(followers).toEqual([]);
    await expect(topics.follow('acme', 'bob', 'bad topic')).rejects.toThrow(/topic/);
  });

  it('reads thousands of followers in pages, never in one reply', async () => {
    const keys = createPushKeys('t4');
    const topics = createTopicStore({ redis, keys });
    const users = Array.from({ length: 2500 }, (_, i) => `user${i}`);
    // seeded directly: 2,500 follow calls would only slow the test
    await redis.sadd(keys.followers('acme', 'jazz'), ...users);
    const pages: string[][] = [];
    for await (const page of topics.followers('acme', 'jazz', 200)) pages.push(page);
    expect(new Set(pages.flat())).toEqual(new Set(users));
    expect(pages.length).toBeGreaterThanOrEqual(8);
    expect(Math.max(...pages.map((page) => page.length))).toBeLessThanOrEqual(400); // COUNT is a hint, not a cap
  });

  it('refuses one topic past the per-user limit', async () => {
    const topics = createTopicStore({ redis, keys: createPushKeys('t5'), maxTopicsPerUser: 2 });
    await topics.follow('acme', 'bob', 'a');
    await topics.follow('acme', 'bob', 'b');
    await topics.follow('acme', 'bob', 'a');
    await expect(topics.follow('acme', 'bob', 'c')).rejects.toThrow(TopicLimitError);
  });
});

describe('push stream and dead letters', () => {
  it('adds nothing for NEVER, one entry otherwise, and stays near its bound', async () => {
    const keys = createPushKeys('t6');
    const queue = createPushQueue({ redis, keys, maxLength: 100 });
    expect(await queue.enqueue(notification('e_1-1'), 'NEVER')).toBeUndefined();
    expect(await redis.xlen(theStream(keys))).toBe(0);
    await queue.enqueue(notification('e_1-2'), 'WHEN_OFFLINE');
    expect(await redis.xlen(theStream(keys))).toBe(1);
    for (let i = 0; i < 1000; i += 1) await queue.enqueue(notification(`e_2-${i}`), 'ALWAYS');
    const length = await redis.xlen(theStream(keys));
    expect(length).toBeGreaterThanOrEqual(100);
    expect(length).toBeLessThanOrEqual(200); // MAXLEN ~ keeps up to one node (100 entries) more
  });

  it('keeps dead letters near their bound, lists them oldest first, replays them as device entries', async () => {
    const keys = createPushKeys('t7');
    const queue = createPushQueue({ redis, keys });
    const deadLetters = createDeadLetters({ redis, keys, queue, maxLength: 100 });
    for (let i = 0; i < 500; i += 1) {
      await deadLetters.add({ notification: notification(`e_3-${i}`), user: 'bob', deviceId: 'dev1', kind: 'FCM', reason: 'FCM answered 503', attempts: 5, failedAt: i });
    }
    const size = await deadLetters.size();
    expect(size).toBeGreaterThanOrEqual(100);
    expect(size).toBeLessThanOrEqual(200);
    const [oldest, next] = await deadLetters.list(2);
    expect(oldest?.failedAt).toBeLessThan(next?.failedAt ?? 0);
    expect(await deadLetters.replay({ ids: [oldest?.id ?? ''] })).toBe(1);
    expect(await deadLetters.size()).toBe(size - 1);
    const [[, fields] = ['', []]] = await redis.xrange(theStream(keys), '-', '+');
    expect(JSON.parse(fields[1] ?? '{}')).toMatchObject({ target: { kind: 'device', user: 'bob', deviceId: 'dev1' }, policy: 'ALWAYS', replay: true });
  });

  it('marks seen-live with a TTL, per tenant', async () => {
    const keys = createPushKeys('t8');
    const seenLive = createSeenLive({ redis, keys, ttlMs: 5000, batchMs: 60_000 });
    seenLive.mark('acme', 'e_4-1', ['bob', 'bob', 'ann']);
    seenLive.mark('globex', 'e_4-2', ['bob']);
    // Nothing is written before the batch is.
    expect(await seenLive.seen('acme', 'e_4-1', 'bob')).toBe(false);
    await seenLive.flush();
    expect(await seenLive.seen('globex', 'e_4-2', 'bob')).toBe(true);
    expect(await seenLive.seen('acme', 'e_4-1', 'ann')).toBe(true);
    expect(await seenLive.seen('acme', 'e_4-1', 'bob')).toBe(true);
    expect(await seenLive.seen('acme', 'e_4-1', 'cid')).toBe(false);
    expect(await seenLive.seen('globex', 'e_4-1', 'bob')).toBe(false);
    const ttl = await redis.pttl(keys.seenLive('acme', 'e_4-1', 'bob'));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(5000);
  });

  it('holds at most 10,000 marks: the 10,000th writes them all at once, the next one waits for its window', async () => {
    const keys = createPushKeys('t10');
    const seenLive = createSeenLive({ redis, keys, ttlMs: 5000, batchMs: 60_000 });
    for (let n = 0; n < 9999; n++) seenLive.mark('acme', `e_6-${n}`, ['bob']);
    seenLive.mark('acme', 'e_6-9998', ['bob']); // the same mark again holds nothing more
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await seenLive.seen('acme', 'e_6-0', 'bob')).toBe(false);
    seenLive.mark('acme', 'e_6-9999', ['bob']);
    const started = Date.now();
    while (!(await seenLive.seen('acme', 'e_6-9999', 'bob'))) {
      // At once, not at the end of the 60 s window.
      expect(Date.now() - started).toBeLessThan(20_000);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(await seenLive.seen('acme', 'e_6-0', 'bob')).toBe(true);
    seenLive.mark('acme', 'e_6-10000', ['bob']);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await seenLive.seen('acme', 'e_6-10000', 'bob')).toBe(false);
    await seenLive.flush();
    expect(await seenLive.seen('acme', 'e_6-10000', 'bob')).toBe(true);
  });

  it('writes a window\'s marks together: one script call per 1,000 marks of a tenant', async () => {
    const keys = createPushKeys('t9');
    const seenLive = createSeenLive({ redis, keys, ttlMs: 5000, batchMs: 50 });
    await seenLive.seen('acme', 'warm', 'up'); // the connection's first command is not counted below
    const scripts = async () => {
      const stats = await redis.info('commandstats');
      const calls = (name: string) => Number(new RegExp(`^cmdstat_${name}:calls=(\\d+)`, 'm').exec(stats)?.[1] ?? 0);
      return calls('evalsha') + calls('eval');
    };
    const before = await scripts();
    for (let n = 0; n < 1500; n++) seenLive.mark('acme', `e_5-${n}`, [`u${n}`]);
    const started = Date.now();
    while (!(await seenLive.seen('acme', 'e_5-1499', 'u1499'))) {
      expect(Date.now() - started).toBeLessThan(10_000);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(await seenLive.seen('acme', 'e_5-0', 'u0')).toBe(true);
    expect(await redis.pttl(keys.seenLive('acme', 'e_5-700', 'u700'))).toBeGreaterThan(0);
    // Two calls of 1,000 and 500 keys; a script Redis has not cached yet takes an EVAL after its EVALSHA.
    const calls = (await scripts()) - before;
    expect(calls).toBeGreaterThanOrEqual(2);
    expect(calls).toBeLessThanOrEqual(3);
  });
});

describe('seen-live marks across a Redis restart', () => {
  it('a batch Redis cannot take is logged and dropped; after the restart (no scripts cached) marks land again', async () => {
    const own = await startRedisServer();
    // Herald's own connection settings: nothing queued while disconnected.
    const connection = new IORedis(own.url, { ...redisClientOptions(1000), retryStrategy: () => 50 });
    connection.on('error', () => undefined);
    const ready = async (): Promise<void> => {
      const started = Date.now();
      while (connection.status !== 'ready') {
        expect(Date.now() - started).toBeLessThan(15_000);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    try {
      await ready();
      const keys = createPushKeys('t11');
      const warnings: string[] = [];
      const seenLive = createSeenLive({ redis: connection, keys, ttlMs: 5000, batchMs: 60_000, logger: { warn: (message: string) => warnings.push(message) } });
      seenLive.mark('acme', 'e_7-1', ['bob']);
      await seenLive.flush();
      expect(await seenLive.seen('acme', 'e_7-1', 'bob')).toBe(true); // the script is cached now

      await own.kill();
      seenLive.mark('acme', 'e_7-2', ['bob']);
      await seenLive.flush(); // resolves: a lost mark costs at most one push
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/could not mark notifications seen live/);

      await own.restart(); // empty, and with no script loaded
      await ready();
      seenLive.mark('acme', 'e_7-3', ['bob']);
      await seenLive.flush();
      expect(warnings).toHaveLength(1);
      expect(await seenLive.seen('acme', 'e_7-3', 'bob')).toBe(true);
      expect(await seenLive.seen('acme', 'e_7-2', 'bob')).toBe(false); // dropped, not replayed
    } finally {
      connection.disconnect();
      await own.stop();
    }
  });
});
