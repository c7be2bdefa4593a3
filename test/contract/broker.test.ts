/**
 * The broker contract, run against every broker: the in-process one, and the Redis one
 * on one node and on a 3-master Redis Cluster (sharded Pub/Sub). The observer map on top
 * of a broker has its own unit tests, `test/unit/observers.test.ts`.
 *
 * With Redis, subscribing and publishing happen on separate brokers (separate
 * connections, as in two processes) wherever the contract allows; the in-process
 * broker does both. Negative checks publish a sentinel afterwards: delivery on one
 * broker is in order, so anything that should not have arrived would have arrived first.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Destination } from '../../src/names/index.js';
import { encodeNotification, READ_STATE_PAYLOAD } from '../../src/common/notification.js';
import { BrokerUnavailableError } from '../../src/common/failures.js';
import {
  type Broker,
  type BrokerMessage,
  type MessageHandler,
  type PublishRequest,
  type PublishResult,
} from '../../src/broker/types.js';
import { formatCursor, parseCursor, type Cursor, type ReadPosition } from '../../src/common/cursor.js';
import { compareIds } from '../../src/broker/history.js';
import { channels, createTestBroker, stopAll, waitFor, type TestBroker, type TestBrokerOptions } from '../support/herald.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import { startClusterTopology, type ClusterTopology } from '../support/redis-topology.js';

let redis: RedisServer;
let cluster: ClusterTopology;
beforeAll(async () => {
  [redis, cluster] = await Promise.all([startRedisServer(), startClusterTopology()]);
}, 60_000);
afterAll(async () => {
  await stopAll();
  await Promise.all([redis?.stop(), cluster?.stop()]);
});

type Kind = 'in-process' | 'redis' | 'redis cluster';

/** How many subscriber connections listen on `channel`: PUBSUB NUMSUB, or SHARDNUMSUB on the master serving its slot. */
async function listeners(kind: Kind, channel: string): Promise<number> {
  if (kind === 'redis') return redis.numsub(channel);
  const owner = await cluster.ownerOf(await cluster.slotOf(channel));
  const [, count] = (await owner.call('PUBSUB', 'SHARDNUMSUB', channel)) as [string, number];
  return Number(count);
}

/** Writes `key` as it is, on the node that serves it (a value an older Herald could have kept). */
async function setRaw(kind: Kind, key: string, value: string): Promise<void> {
  if (kind === 'redis') await redis.client().set(key, value);
  else await (await cluster.ownerOf(await cluster.slotOf(key))).call('SET', key, value);
}

/** Makes Redis forget Herald's scripts, on every master of the cluster. */
async function flushScripts(kind: Kind): Promise<void> {
  if (kind === 'redis') await redis.client().script('FLUSH');
  else await Promise.all(cluster.servers.filter((node) => node.alive).map((node) => node.call('SCRIPT', 'FLUSH')));
}

const TENANT_KEY = channels.tenantKey('acme');

/** A user destination no other test uses. */
const freshDestination = (): Destination => channels.destination('acme', 'USER', `u-${randomUUID().slice(0, 8)}`);

const publish = (broker: Broker, destination: Destination, payload: string): Promise<PublishResult> =>
  broker.publish({ destination, tenantKey: TENANT_KEY, payload });

/** A sink that records what it hears and returns `count` for each message. */
function recordingSink(count: number): { sink: MessageHandler; heard: Array<{ channel: string; message: BrokerMessage }>; payloads: () => string[] } {
  const heard: Array<{ channel: string; message: BrokerMessage }> = [];
  return {
    heard,
    sink: (channel, message) => {
      heard.push({ channel, message });
      return count;
    },
    payloads: () => heard.map(({ message }) => message.payload),
  };
}

const notification = (text: string) => ({ text, timestamp: 1_700_000_000, audience: 'USER', sender: 'billing' }) as const;

describe.each<[Kind]>([['in-process'], ['redis'], ['redis cluster']])('the %s broker', (kind) => {
  const isRedis = kind !== 'in-process';
  /** A broker of its own; a generous report timeout, so a busy machine cannot cut a count short. */
  const newBroker = (options: TestBrokerOptions = {}): Promise<TestBroker> =>
    kind === 'redis cluster'
      ? createTestBroker(undefined, { reportTimeoutMs: 5000, ...options, settings: { redisCluster: { nodes: cluster.seeds, password: undefined } } })
      : createTestBroker(kind === 'redis' ? redis.url : undefined, { reportTimeoutMs: 5000, ...options });

  /** A broker to subscribe on and one to publish on: separate with Redis, the same one in-process. */
  async function subscribeAndPublish(): Promise<{ subscriber: Broker; publisher: Broker }> {
    const subscriber = (await newBroker()).broker;
    const publisher = isRedis ? (await newBroker()).broker : subscriber;
    return { subscriber, publisher };
  }

  /** NUMSUB of `channel` with Redis; `expected` in-process, where there is nothing to count. */
  const numsub = (channel: string, expected: number): Promise<number> => (isRedis ? listeners(kind, channel) : Promise.resolve(expected));

  describe('contract', () => {
    it.runIf(isRedis)('publishes and reads history after Redis lost its scripts (SCRIPT FLUSH: EVALSHA falls back to EVAL)', async () => {
      const { subscriber, publisher } = await subscribeAndPublish();
      const { sink, payloads } = recordingSink(1);
      subscriber.listen(sink);
      const destination = freshDestination();
      await subscriber.subscribe(destination.channel);
      const first = await publish(publisher, destination, 'before the flush');
      await flushScripts(kind);
      const second = await publish(publisher, destination, 'after the flush');
      expect(second.receivedUsers).toBe(1);
      expect(payloads()).toEqual(['before the flush', 'after the flush']);
      await flushScripts(kind);
      const after = parseCursor(first.id);
      if (!after) throw new Error(`not a cursor: ${first.id}`);
      const page = await publisher.readAfter({ tenantKey: TENANT_KEY, streams: [destination.stream], after, limit: 10 });
      expect(page).toEqual({ gap: false, entries: [{ id: second.id, payload: 'after the flush' }], more: false });
    });

    it('is ready', async () => {
      const { broker } = await newBroker();
      expect(broker.isReady()).toBe(true);
    });

    it('resolves a publish nobody subscribed to with 0 and delivers it nowhere', async () => {
      const { subscriber, publisher } = await subscribeAndPublish();
      const { sink, payloads } = recordingSink(1);
      subscriber.listen(sink);
      const sentinel = freshDestination();
      await subscriber.subscribe(sentinel.channel);

      const result = await publish(publisher, freshDestination(), 'to nobody');
      expect(result).toEqual({ id: expect.any(String), receivedUsers: 0, duplicate: false });
      expect((await publish(publisher, sentinel, 'sentinel')).receivedUsers).toBe(1);
      expect(payloads()).toEqual(['sentinel']);
    });

    it('once subscribe resolves, delivers exactly the payload and resolves with what the sink returned', async () => {
      const { subscriber, publisher } = await subscribeAndPublish();
      const { sink, heard } = recordingSink(3);
      subscriber.listen(sink);
      const destination = freshDestination();
      await subscriber.subscribe(destination.channel);
      expect(await numsub(destination.channel, 1)).toBe(1); // confirmed before subscribe resolved

      const payload = 'line one\nline two: "quoted" \\ ✓ \u0000 end\n';
      const result = await publish(publisher, destination, payload);
      expect(result.receivedUsers).toBe(3);
      expect(result.duplicate).toBe(false);
      expect(heard).toEqual([{ channel: destination.channel, message: { id: result.id, payload } }]);
    });

    it.runIf(isRedis)('sums what the sinks of every subscribing broker returned', async () => {
      const first = (await newBroker()).broker;
      const second = (await newBroker()).broker;
      const publisher = (await newBroker()).broker;
      const one = recordingSink(2);
      const other = recordingSink(5);
      first.listen(one.sink);
      second.listen(other.sink);
      const destination = freshDestination();
      await Promise.all([first.subscribe(destination.channel), second.subscribe(destination.channel)]);
      expect(await listeners(kind, destination.channel)).toBe(2);

      const result = await publish(publisher, destination, 'to both');
      expect(result.receivedUsers).toBe(7);
      expect(one.payloads()).toEqual(['to both']);
      expect(other.payloads()).toEqual(['to both']);
    });

    it('delivers nothing on a channel after unsubscribe', async () => {
      const { subscriber, publisher } = await subscribeAndPublish();
      const { sink, payloads } = recordingSink(1);
      subscriber.listen(sink);
      const destination = freshDestination();
      const sentinel = freshDestination();
      await subscriber.subscribe(destination.channel);
      await subscriber.subscribe(sentinel.channel);
      expect((await publish(publisher, destination, 'before')).receivedUsers).toBe(1);

      await subscriber.unsubscribe(destination.channel);
      expect(await numsub(destination.channel, 0)).toBe(0);
      expect((await publish(publisher, destination, 'after')).receivedUsers).toBe(0);
      expect((await publish(publisher, sentinel, 'sentinel')).receivedUsers).toBe(1);
      expect(payloads()).toEqual(['before', 'sentinel']);
    });

    it('refuses a second sink and keeps the first', async () => {
      const { subscriber, publisher } = await subscribeAndPublish();
      const first = recordingSink(1);
      const second = recordingSink(99);
      subscriber.listen(first.sink);
      expect(() => subscriber.listen(second.sink)).toThrow('the broker already has a message handler');

      const destination = freshDestination();
      await subscriber.subscribe(destination.channel);
      expect((await publish(publisher, destination, 'hello')).receivedUsers).toBe(1);
      expect(first.payloads()).toEqual(['hello']);
      expect(second.heard).toEqual([]);
    });

    it('is not ready after close(), and delivers nothing more', async () => {
      const { subscriber, publisher } = await subscribeAndPublish();
      const { sink, heard } = recordingSink(1);
      subscriber.listen(sink);
      const destination = freshDestination();
      await subscriber.subscribe(destination.channel);
      expect(subscriber.isReady()).toBe(true);

      await subscriber.close();
      expect(subscriber.isReady()).toBe(false);
      expect(await numsub(destination.channel, 0)).toBe(0);
      if (isRedis) {
        // another process's publish reaches nobody
        expect((await publish(publisher, destination, 'after close')).receivedUsers).toBe(0);
      } else {
        // in-process the closed broker is the publisher too, and refuses
        await expect(publish(publisher, destination, 'after close')).rejects.toBeInstanceOf(BrokerUnavailableError);
      }
      await expect(subscriber.subscribe(destination.channel)).rejects.toBeInstanceOf(BrokerUnavailableError);
      expect(heard).toEqual([]);
    });

    it.runIf(kind === 'redis')('refuses a SUBSCRIBE with BrokerUnavailableError while its Redis connection is lost, and subscribes nothing', async () => {
      const side = await newBroker();
      side.subscriber?.disconnect();
      await waitFor(() => !side.broker.isReady(), 'the broker to be unavailable');
      const { channel } = freshDestination();
      await expect(side.broker.subscribe(channel)).rejects.toBeInstanceOf(BrokerUnavailableError);
      expect(await redis.numsub(channel)).toBe(0);
    });
  });

  describe('read state', () => {
    const readKey = () => channels.readStateKey('acme', `u-${randomUUID().slice(0, 8)}`);
    const cursor = (id: string): Cursor => {
      const parsed = parseCursor(id);
      if (!parsed) throw new Error(`not a cursor: ${id}`);
      return parsed;
    };

    it('keeps the position, moves only forward, and publishes each move on the channel (never a move back)', async () => {
      const { subscriber, publisher } = await subscribeAndPublish();
      const { sink, heard } = recordingSink(1);
      subscriber.listen(sink);
      const destination = freshDestination();
      await subscriber.subscribe(destination.channel);
      const key = readKey();
      expect(await publisher.readPosition(key)).toBeUndefined();
      const first = await publish(publisher, destination, 'one');
      const second = await publish(publisher, destination, 'two');
      const change = (upTo: string) => ({ key, tenantKey: TENANT_KEY, channel: destination.channel, upTo: cursor(upTo), payload: READ_STATE_PAYLOAD });

      expect(await publisher.markRead(change(second.id))).toEqual({ readUpTo: cursor(second.id), advanced: true });
      expect(await publisher.markRead(change(first.id))).toEqual({ readUpTo: cursor(second.id), advanced: false });
      expect(await publisher.markRead(change(second.id))).toEqual({ readUpTo: cursor(second.id), advanced: false });
      expect(await publisher.readPosition(key)).toEqual(cursor(second.id));
      // A sentinel after the refused moves: delivery is in order, so they would be here.
      await publish(publisher, destination, 'sentinel');
      await waitFor(() => heard.length === 4, 'the sentinel');
      expect(heard.map(({ message }) => message)).toEqual([
        { id: first.id, payload: 'one' },
        { id: second.id, payload: 'two' },
        { id: second.id, payload: READ_STATE_PAYLOAD },
        { id: expect.any(String), payload: 'sentinel' },
      ]);
    });

    it('signals a message on a channel, in order with notifications, never kept in history', async () => {
      const { subscriber, publisher } = await subscribeAndPublish();
      const { sink, heard } = recordingSink(1);
      subscriber.listen(sink);
      const destination = freshDestination();
      await subscriber.subscribe(destination.channel);
      const first = await publish(publisher, destination, 'one');
      await publisher.signal(destination.channel, '7', '{"kind":"preferences","categories":{}}');
      await publish(publisher, destination, 'sentinel');
      await waitFor(() => heard.length === 3, 'the sentinel');
      expect(heard.map(({ message }) => message)).toEqual([
        { id: first.id, payload: 'one' },
        { id: '7', payload: '{"kind":"preferences","categories":{}}' },
        { id: expect.any(String), payload: 'sentinel' },
      ]);
      const page = await publisher.readPage({ tenantKey: TENANT_KEY, streams: [destination.stream], before: undefined, limit: 10 });
      expect(page.gap === false && page.entries.map((entry) => entry.payload)).toEqual(['sentinel', 'one']);
    });

    it.runIf(isRedis)('replaces a position of another epoch (a history that was lost)', async () => {
      const { broker } = await newBroker();
      const key = readKey();
      const destination = freshDestination();
      await setRaw(kind, key, 'old_9000000000000-9');
      const now = cursor((await publish(broker, destination, 'now')).id);
      const change = { key, tenantKey: TENANT_KEY, channel: destination.channel, upTo: now, payload: READ_STATE_PAYLOAD };
      expect(await broker.markRead(change)).toEqual({ readUpTo: now, advanced: true });
    });

    it.runIf(isRedis)('keeps the position in Redis, where a new broker (a restarted server) finds it', async () => {
      const key = readKey();
      const destination = freshDestination();
      const first = await newBroker();
      const upTo = cursor((await publish(first.broker, destination, 'kept')).id);
      await first.broker.markRead({ key, tenantKey: TENANT_KEY, channel: destination.channel, upTo, payload: READ_STATE_PAYLOAD });
      expect(await (await newBroker()).broker.readPosition(key)).toEqual(upTo);
      expect(key).toMatch(/^[^:]+:\{acme\}:read:user:/);
    });

    /** A tenant of its own, so its newest id is this test's last publish. */
    const ownTenant = () => {
      const tenant = `t-${randomUUID().slice(0, 8)}`;
      return { tenantKey: channels.tenantKey(tenant), key: channels.readStateKey(tenant, 'ann'), user: channels.destination(tenant, 'USER', 'ann') };
    };

    it('takes a position past the newest notification as the newest, so what comes later is unread', async () => {
      const { subscriber, publisher } = await subscribeAndPublish();
      const { sink, heard } = recordingSink(1);
      subscriber.listen(sink);
      const { tenantKey, key, user } = ownTenant();
      await subscriber.subscribe(user.channel);
      const first = cursor((await publisher.publish({ destination: user, tenantKey, payload: 'one' })).id);
      const change = (upTo: Cursor) => ({ key, tenantKey, channel: user.channel, upTo, payload: READ_STATE_PAYLOAD });
      const future: Cursor = { epoch: first.epoch, ms: 9_999_999_999_999, seq: 0 };
      expect(await publisher.markRead(change(future))).toEqual({ readUpTo: first, advanced: true });
      expect(await publisher.readPosition(key)).toEqual(first);
      const later = cursor((await publisher.publish({ destination: user, tenantKey, payload: 'two' })).id);
      expect(await publisher.markRead(change(later))).toEqual({ readUpTo: later, advanced: true });
      await waitFor(() => heard.length === 4, 'both notifications and both moves');
      expect(heard.map(({ message }) => message)).toEqual([
        { id: formatCursor(first), payload: 'one' },
        { id: formatCursor(first), payload: READ_STATE_PAYLOAD },
        { id: formatCursor(later), payload: 'two' },
        { id: formatCursor(later), payload: READ_STATE_PAYLOAD },
      ]);
    });

    it('refuses a position of an epoch the tenant does not have: nothing kept, nothing published', async () => {
      const { subscriber, publisher } = await subscribeAndPublish();
      const { sink, heard } = recordingSink(1);
      subscriber.listen(sink);
      const { tenantKey, key, user } = ownTenant();
      await subscriber.subscribe(user.channel);
      const change = (upTo: Cursor) => ({ key, tenantKey, channel: user.channel, upTo, payload: READ_STATE_PAYLOAD });
      // A tenant with no history yet has no epoch at all.
      expect(await publisher.markRead(change({ epoch: 'feedface', ms: 1, seq: 1 }))).toEqual({ unknownEpoch: 'feedface' });
      const sent = cursor((await publisher.publish({ destination: user, tenantKey, payload: 'one' })).id);
      expect(await publisher.markRead(change({ ...sent, epoch: 'feedface' }))).toEqual({ unknownEpoch: 'feedface' });
      expect(await publisher.readPosition(key)).toBeUndefined();
      const sentinel = await publisher.publish({ destination: user, tenantKey, payload: 'sentinel' });
      await waitFor(() => heard.some(({ message }) => message.id === sentinel.id), 'the sentinel');
      expect(heard.map(({ message }) => message.payload)).toEqual(['one', 'sentinel']);
    });

    it.runIf(isRedis)('takes a kept position past the newest (kept before positions were bounded) back to the newest', async () => {
      const { broker } = await newBroker();
      const { tenantKey, key, user } = ownTenant();
      const first = cursor((await broker.publish({ destination: user, tenantKey, payload: 'one' })).id);
      const second = cursor((await broker.publish({ destination: user, tenantKey, payload: 'two' })).id);
      await setRaw(kind, key, `${first.epoch}_9999999999999-0`);
      expect(await broker.markRead({ key, tenantKey, channel: user.channel, upTo: first, payload: READ_STATE_PAYLOAD })).toEqual({ readUpTo: second, advanced: false });
      expect(await broker.readPosition(key)).toEqual(second);
      const third = cursor((await broker.publish({ destination: user, tenantKey, payload: 'three' })).id);
      expect(await broker.markRead({ key, tenantKey, channel: user.channel, upTo: third, payload: READ_STATE_PAYLOAD })).toEqual({ readUpTo: third, advanced: true });
    });
  });

  describe('ordering', () => {
    // What `core/resume.ts` relies on (the `Broker` TSDoc states it): a tenant's ids
    // follow the order its publishes were acknowledged, and a subscriber hears the
    // tenant's notifications in id order across all the channels it holds.
    it('gives a subscriber a tenant’s notifications in strictly increasing id order across its channels, from concurrent publishers, with ids in the order publishes were acknowledged', async () => {
      const tenant = `t-${randomUUID().slice(0, 8)}`;
      const tenantKey = channels.tenantKey(tenant);
      const destinations = [
        channels.destination(tenant, 'USER', 'ann'),
        channels.destination(tenant, 'USER', 'bob'),
        channels.destination(tenant, 'STORE', 's1'),
        channels.destination(tenant, 'COMPANY', tenant),
      ];
      // Two subscribers with Redis (as two subscribe servers): one hears every channel,
      // the other ann's subscription (her user channel, her store, the company).
      const subscribers = isRedis ? [(await newBroker()).broker, (await newBroker()).broker] : [(await newBroker()).broker];
      const heard = subscribers.map((subscriber) => {
        const sink = recordingSink(1);
        subscriber.listen(sink.sink);
        return sink.heard;
      });
      const wants = [destinations, destinations.filter((destination) => !destination.channel.endsWith(':user:bob'))];
      await Promise.all(subscribers.map((subscriber, n) => Promise.all((wants[n] ?? []).map(({ channel }) => subscriber.subscribe(channel)))));
      // Three publishers with Redis (three connections, as three publish servers).
      const publishers = isRedis ? [(await newBroker()).broker, (await newBroker()).broker, (await newBroker()).broker] : subscribers;

      // Logical time: each publish's start and acknowledgement take the next tick.
      let tick = 0;
      const sent: Array<{ id: string; channel: string; started: number; acked: number }> = [];
      const CALLERS = 8;
      const EACH = 25;
      await Promise.all(
        Array.from({ length: CALLERS }, async (_unused, caller) => {
          for (let n = 0; n < EACH; n++) {
            const destination = destinations[(caller + n) % destinations.length] as Destination;
            const publisher = publishers[(caller + n) % publishers.length] as Broker;
            const started = tick++;
            // Counted and uncounted publishes answer at different moments: both kinds.
            const { id } = await publisher.publish({ destination, tenantKey, payload: `${caller}.${n}`, countDeliveries: n % 2 === 0 });
            sent.push({ id, channel: destination.channel, started, acked: tick++ });
          }
        }),
      );

      // Acknowledged before another started: a smaller id.
      const violations = sent.flatMap((earlier) =>
        sent.filter((later) => earlier.acked < later.started && compareIds(earlier.id, later.id) >= 0).map((later) => `${earlier.id} acknowledged before ${later.id} started`),
      );
      expect(violations).toEqual([]);
      expect(new Set(sent.map(({ id }) => id)).size).toBe(CALLERS * EACH);

      for (const [n, messages] of heard.entries()) {
        const wanted = new Set((wants[n] ?? []).map(({ channel }) => channel));
        const expected = sent.filter(({ channel }) => wanted.has(channel)).map(({ id }) => id).sort(compareIds);
        await waitFor(() => messages.length >= expected.length, `subscriber ${n} to hear ${expected.length} notifications`);
        const ids = messages.map(({ message }) => message.id);
        const outOfOrder = ids.flatMap((id, at) => (at > 0 && compareIds(ids[at - 1] ?? '', id) >= 0 ? [`${ids[at - 1]} then ${id}`] : []));
        expect(outOfOrder).toEqual([]);
        expect(ids).toEqual(expected);
      }
    });
  });

  describe('history', () => {
    /** A tenant of its own, so epochs and sequences are this test's alone. */
    const freshTenant = () => {
      const tenant = `t-${randomUUID().slice(0, 8)}`;
      const user = channels.destination(tenant, 'USER', 'ann');
      const store = channels.destination(tenant, 'STORE', 's1');
      return { tenant, tenantKey: channels.tenantKey(tenant), user, store, streams: [user.stream, store.stream] };
    };
    const send = (broker: Broker, tenantKey: string, destination: Destination, text: string, idempotency?: PublishRequest['idempotency']) =>
      broker.publish({ destination, tenantKey, payload: encodeNotification(notification(text)), idempotency });
    const texts = (entries: readonly BrokerMessage[]) => entries.map((entry) => (JSON.parse(entry.payload) as { text: string }).text);
    const cursor = (id: string): Cursor => {
      const parsed = parseCursor(id);
      if (!parsed) throw new Error(`not a cursor: ${id}`);
      return parsed;
    };

    it('gives ids ordered across a tenant’s streams and reads everything after a cursor, merged in order', async () => {
      const { broker } = await newBroker();
      const { tenantKey, user, store, streams } = freshTenant();
      const first = await send(broker, tenantKey, user, 'u0');
      const ids = [
        (await send(broker, tenantKey, store, 's1')).id,
        (await send(broker, tenantKey, user, 'u1')).id,
        (await send(broker, tenantKey, store, 's2')).id,
      ];
      expect([...ids].sort(compareIds)).toEqual(ids);
      const after = await broker.readAfter({ tenantKey, streams, after: cursor(first.id), limit: 100 });
      expect(after).toEqual({
        gap: false,
        entries: [expect.objectContaining({ id: ids[0] }), expect.objectContaining({ id: ids[1] }), expect.objectContaining({ id: ids[2] })],
        more: false,
      });
      expect(after.gap ? [] : texts(after.entries)).toEqual(['s1', 'u1', 's2']);
    });

    it('delivers live with the same id that history holds', async () => {
      const { subscriber, publisher } = await subscribeAndPublish();
      const { sink, heard } = recordingSink(1);
      subscriber.listen(sink);
      const { tenantKey, user, streams } = freshTenant();
      await subscriber.subscribe(user.channel);
      const start = await send(publisher, tenantKey, user, 'start');
      const live = await send(publisher, tenantKey, user, 'live');
      await waitFor(() => heard.length === 2, 'both deliveries');
      expect(heard.map(({ message }) => message.id)).toEqual([start.id, live.id]);
      const after = await publisher.readAfter({ tenantKey, streams, after: cursor(start.id), limit: 100 });
      expect(after.gap ? [] : after.entries.map((entry) => entry.id)).toEqual([live.id]);
    });

    it('reads after a cursor a page at a time, every entry once and in order, however the streams interleave', async () => {
      const { broker } = await newBroker();
      const { tenantKey, user, store, streams } = freshTenant();
      const start = await send(broker, tenantKey, user, 'start');
      const expected: string[] = [];
      // A dense store stream and a sparse user stream: the page must stop where both are complete.
      for (let n = 0; n < 23; n++) expected.push((await send(broker, tenantKey, n % 5 === 0 ? user : store, `n${n}`)).id);
      const got: string[] = [];
      let after: ReadPosition = cursor(start.id);
      for (let pages = 0; ; pages++) {
        expect(pages).toBeLessThan(30);
        const page = await broker.readAfter({ tenantKey, streams, after, limit: 4 });
        if (page.gap) throw new Error(page.reason);
        expect(page.entries.length).toBeLessThanOrEqual(4);
        got.push(...page.entries.map((entry) => entry.id));
        const last = page.entries.at(-1);
        if (!page.more) break;
        expect(last).toBeDefined();
        after = cursor(last?.id ?? '');
      }
      expect(got).toEqual(expected);
    });

    it.each<[string, (n: number) => number]>([
      ['a store at a time', (n) => Math.floor(n / 6)],
      ['each store in turn', (n) => n % 12],
    ])('reads full pages over many streams, %s (a page per stream per step held 3 entries)', async (_, storeOf) => {
      const { broker } = await newBroker();
      const { tenant, tenantKey, user } = freshTenant();
      const stores = Array.from({ length: 12 }, (_unused, n) => channels.destination(tenant, 'STORE', `s${n}`));
      const start = await send(broker, tenantKey, user, 'start');
      const expected: string[] = [];
      for (let n = 0; n < 72; n++) expected.push((await send(broker, tenantKey, stores[storeOf(n)] ?? user, `n${n}`)).id);
      const streams = [user.stream, ...stores.map(({ stream }) => stream)];
      const got: string[] = [];
      const sizes: number[] = [];
      let after: ReadPosition = cursor(start.id);
      for (;;) {
        expect(sizes.length).toBeLessThan(20);
        const page = await broker.readAfter({ tenantKey, streams, after, limit: 10 });
        if (page.gap) throw new Error(page.reason);
        got.push(...page.entries.map((entry) => entry.id));
        sizes.push(page.entries.length);
        if (!page.more) break;
        after = cursor(page.entries.at(-1)?.id ?? '');
      }
      expect(got).toEqual(expected);
      expect(sizes.slice(0, 7)).toEqual([10, 10, 10, 10, 10, 10, 10]);
      // Bytes bound a page too: it ends with the entry that reaches them.
      const bytes = Buffer.byteLength(encodeNotification(notification('n10')));
      const small = await broker.readAfter({ tenantKey, streams, after: cursor(start.id), limit: 10, maxBytes: 2 * bytes + 1 });
      expect(small).toEqual({ gap: false, entries: expected.slice(0, 3).map((id) => expect.objectContaining({ id })), more: true });
    });

    it('reads after a time in whatever history the tenant has, and finds nothing when it has none', async () => {
      const { broker } = await newBroker();
      const { tenantKey, user, streams } = freshTenant();
      expect(await broker.readAfter({ tenantKey, streams, after: { epoch: undefined, ms: Date.now() - 1000, seq: 0 }, limit: 10 })).toEqual({
        gap: false,
        entries: [],
        more: false,
      });
      const old = await send(broker, tenantKey, user, 'old');
      const oldMs = cursor(old.id).ms;
      await waitFor(() => Date.now() > oldMs + 2, 'the clock to move on');
      const since = Date.now();
      const fresh = await send(broker, tenantKey, user, 'fresh');
      const page = await broker.readAfter({ tenantKey, streams, after: { epoch: undefined, ms: since - 1, seq: 0 }, limit: 10 });
      expect(page.gap ? page.reason : page.entries.map((entry) => entry.id)).toEqual([fresh.id]);
    });

    it('pages newest first, with hasMore and an exclusive `before`', async () => {
      const { broker } = await newBroker();
      const { tenantKey, user, store, streams } = freshTenant();
      for (let n = 0; n < 5; n++) await send(broker, tenantKey, n % 2 ? store : user, `n${n}`);
      const first = await broker.readPage({ tenantKey, streams, before: undefined, limit: 3 });
      expect(first.gap ? undefined : [texts(first.entries), first.hasMore]).toEqual([['n4', 'n3', 'n2'], true]);
      const last = first.gap ? undefined : first.entries.at(-1);
      const second = await broker.readPage({ tenantKey, streams, before: cursor(last?.id ?? ''), limit: 3 });
      expect(second.gap ? undefined : [texts(second.entries), second.hasMore]).toEqual([['n1', 'n0'], false]);
    });

    it('reports a gap for a cursor whose successors were trimmed, and none for one still kept', async () => {
      const { broker } = await newBroker({ retention: { maxLength: 2, maxAgeMs: 3_600_000 } });
      const { tenantKey, user, streams } = freshTenant();
      const ids: string[] = [];
      for (let n = 0; n < 5; n++) ids.push((await send(broker, tenantKey, user, `n${n}`)).id);
      const trimmed = await broker.readAfter({ tenantKey, streams, after: cursor(ids[0] ?? ''), limit: 100 });
      expect(trimmed).toMatchObject({ gap: true, reason: expect.stringContaining('trimmed') });
      const kept = await broker.readAfter({ tenantKey, streams, after: cursor(ids[3] ?? ''), limit: 100 });
      expect(kept.gap ? [] : texts(kept.entries)).toEqual(['n4']);
    });

    it('reports a gap for a cursor of another epoch', async () => {
      const { broker } = await newBroker();
      const { tenantKey, user, streams } = freshTenant();
      const sent = cursor((await send(broker, tenantKey, user, 'x')).id);
      const foreign = { ...sent, epoch: 'feedfacecafe' };
      expect(await broker.readAfter({ tenantKey, streams, after: foreign, limit: 100 })).toMatchObject({ gap: true, reason: expect.stringContaining('earlier') });
      expect(await broker.readPage({ tenantKey, streams, before: foreign, limit: 5 })).toMatchObject({ gap: true });
    });

    it('reports a gap when the tenant has no history at all (lost)', async () => {
      const { broker } = await newBroker();
      const { tenantKey, streams } = freshTenant();
      const after = await broker.readAfter({ tenantKey, streams, after: { epoch: 'abc123', ms: Date.now(), seq: 1 }, limit: 100 });
      expect(after).toMatchObject({ gap: true, reason: expect.stringContaining('lost') });
    });

    it('remembers an idempotency key: the repeat returns the first id and delivers nothing', async () => {
      const { subscriber, publisher } = await subscribeAndPublish();
      const { sink, heard } = recordingSink(1);
      subscriber.listen(sink);
      const { tenant, tenantKey, user, streams } = freshTenant();
      await subscriber.subscribe(user.channel);
      const start = await send(publisher, tenantKey, user, 'start');
      const key = { key: channels.idempotencyKey(tenant, 'billing', randomUUID()), windowMs: 60_000 };
      const first = await send(publisher, tenantKey, user, 'once', key);
      const repeat = await send(publisher, tenantKey, user, 'once', key);
      expect(first).toEqual({ id: expect.any(String), receivedUsers: 1, duplicate: false });
      expect(repeat).toEqual({ id: first.id, receivedUsers: 1, duplicate: true });
      const sentinel = await send(publisher, tenantKey, user, 'sentinel');
      await waitFor(() => heard.some(({ message }) => message.id === sentinel.id), 'the sentinel');
      expect(heard.map(({ message }) => message.id)).toEqual([start.id, first.id, sentinel.id]);
      const after = await publisher.readAfter({ tenantKey, streams, after: cursor(start.id), limit: 100 });
      expect(after.gap ? [] : texts(after.entries)).toEqual(['once', 'sentinel']);
    });
  });
});
