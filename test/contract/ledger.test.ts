/**
 * The ledger contract, run against every ledger store beside its broker: the in-process
 * one (memory), and the Redis one on one node and on a 3-master Redis Cluster. A
 * timeline is started by the publish itself (the Redis publish script, the in-process
 * broker's publish), later events only append to one that exists, at most `maxEvents`
 * are kept and the rest counted, and a timeline is the tenant's alone.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeNotification } from '../../src/common/notification.js';
import type { PublishRequest } from '../../src/broker/types.js';
import { createLedgerKeys } from '../../src/ledger/keys.js';
import type { LedgerEvent } from '../../src/ledger/events.js';
import { channels, createTestBroker, PREFIX, stopAll, type TestBroker } from '../support/herald.js';
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

const MAX_EVENTS = 4;
/** History's age (`HISTORY_MAX_AGE_SECONDS`). */
const MAX_AGE_MS = 60_000;
/** The ledger's own (`LEDGER_MAX_AGE_SECONDS`), shorter than history's. */
const LEDGER_MAX_AGE_MS = 30_000;
const keys = createLedgerKeys(PREFIX);

describe.each<[Kind]>([['in-process'], ['redis'], ['redis cluster']])('the ledger beside the %s broker', (kind) => {
  let tested: TestBroker;
  /** A broker of this kind with a ledger of `ledgerMaxAgeMs`. */
  const brokerWith = (ledgerMaxAgeMs: number): Promise<TestBroker> => {
    const settings = { ledger: { maxEvents: MAX_EVENTS, channelPrefix: PREFIX }, ...(kind === 'redis cluster' ? { redisCluster: { nodes: cluster.seeds, password: undefined } } : {}) };
    return createTestBroker(kind === 'redis' ? redis.url : undefined, { retention: { maxLength: 100, maxAgeMs: MAX_AGE_MS, ledgerMaxAgeMs }, settings });
  };
  beforeAll(async () => {
    tested = await brokerWith(LEDGER_MAX_AGE_MS);
  });
  const ledger = () => {
    if (tested.ledger === undefined) throw new Error('the broker has no ledger');
    return tested.ledger;
  };

  /** Publishes to `user` of `tenant`, starting its ledger unless `withLedger` is false. */
  const publish = async (tenant: string, user: string, options: { withLedger?: boolean; idempotencyKey?: string; through?: TestBroker } = {}): Promise<string> => {
    const request: PublishRequest = {
      destination: channels.destination(tenant, 'USER', user),
      tenantKey: channels.tenantKey(tenant),
      payload: encodeNotification({ text: 'hi', timestamp: 1_700_000_000, audience: 'USER', sender: 'billing' }),
      countDeliveries: false,
      idempotency: options.idempotencyKey === undefined ? undefined : { key: channels.idempotencyKey(tenant, 'billing', options.idempotencyKey), windowMs: 60_000 },
      ledger:
        options.withLedger === false
          ? undefined
          : { tenant, keyPrefix: keys.prefixOf(tenant), event: { type: 'accepted', publisher: 'billing', audience: 'USER', to: user, push: 'ALWAYS' } },
    };
    return (await (options.through ?? tested).broker.publish(request)).id;
  };
  const push = (user: string, attempt: number): LedgerEvent => ({ type: 'push', at: Date.now(), status: 'failed', user, device: 'd1', kind: 'WEBHOOK', attempt, reason: 'timeout' });

  it('starts a timeline with the publish: the accepted event, stamped by the broker', async () => {
    const before = Date.now();
    const id = await publish('acme', `u-${randomUUID()}`);
    const record = await ledger().read('acme', id);
    expect(record?.dropped).toBe(0);
    expect(record?.events).toHaveLength(1);
    const [accepted] = record?.events ?? [];
    expect(accepted).toMatchObject({ type: 'accepted', publisher: 'billing', audience: 'USER', push: 'ALWAYS' });
    // Redis' clock and this one are the same machine's.
    expect(accepted?.at).toBeGreaterThanOrEqual(before - 1000);
    expect(accepted?.at).toBeLessThanOrEqual(Date.now() + 1000);
  });

  it('appends later events in order, keeps the first maxEvents and counts the rest', async () => {
    const id = await publish('acme', 'ann');
    ledger().record('acme', id, { type: 'live', at: Date.now(), server: 'test', subscriptions: 2, transports: { websocket: 1, sse: 1 }, users: ['ann'] });
    for (let attempt = 1; attempt <= 4; attempt++) ledger().record('acme', id, push('ann', attempt));
    await ledger().flush();
    const record = await ledger().read('acme', id);
    expect(record?.events.map((event) => (event.type === 'push' ? `push ${event.attempt}` : event.type))).toEqual(['accepted', 'live', 'push 1', 'push 2']);
    expect(record?.dropped).toBe(2);
    // More later: still the first ones, and the count grows.
    ledger().record('acme', id, { type: 'read', at: Date.now(), user: 'ann' });
    await ledger().flush();
    expect(await ledger().read('acme', id)).toMatchObject({ dropped: 3 });
  });

  it('writes nothing to a timeline that does not exist: a publish without one, or an unknown id', async () => {
    const id = await publish('acme', 'bob', { withLedger: false });
    ledger().record('acme', id, push('bob', 1));
    ledger().record('acme', `${id.split('_')[0]}_1-1`, push('bob', 1));
    await ledger().flush();
    expect(await ledger().read('acme', id)).toBeUndefined();
    expect(await ledger().read('acme', `${id.split('_')[0]}_1-1`)).toBeUndefined();
  });

  it("keeps a tenant's timeline its own", async () => {
    const id = await publish('acme', 'cat');
    ledger().record('globex', id, push('cat', 1));
    await ledger().flush();
    expect(await ledger().read('globex', id)).toBeUndefined();
    expect((await ledger().read('acme', id))?.events).toHaveLength(1);
  });

  it('records nothing for a repeated idempotency key', async () => {
    const key = `k-${randomUUID()}`;
    const first = await publish('acme', 'dan', { idempotencyKey: key });
    const again = await publish('acme', 'dan', { idempotencyKey: key });
    expect(again).toBe(first);
    expect((await ledger().read('acme', first))?.events).toHaveLength(1);
  });

  it.runIf(kind === 'redis')("expires on its own age, not history's: the timeline has the ledger's TTL, its dropped counter the timeline's", async () => {
    const id = await publish('acme', 'eve');
    for (let attempt = 1; attempt <= MAX_EVENTS; attempt++) ledger().record('acme', id, push('eve', attempt));
    await ledger().flush();
    const client = redis.client();
    const ttl = await client.pttl(keys.ledger('acme', id));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(LEDGER_MAX_AGE_MS);
    // The notification's history stream keeps history's own, longer TTL.
    expect(await client.pttl(channels.destination('acme', 'USER', 'eve').stream)).toBeGreaterThan(LEDGER_MAX_AGE_MS);
    const droppedTtl = await client.pttl(keys.dropped('acme', id));
    expect(droppedTtl).toBeGreaterThan(0);
    expect(droppedTtl).toBeLessThanOrEqual(ttl);
  });

  it('forgets a timeline once the ledger\'s age has passed, while history still holds the notification', async () => {
    const ageMs = 1500;
    const short = await brokerWith(ageMs);
    const published = Date.now();
    const id = await publish('acme', 'fay', { through: short });
    const reader = short.ledger;
    if (reader === undefined) throw new Error('the broker has no ledger');
    // A read before the age is up: the timeline is there (a stalled machine would skip this check, never fail it).
    const early = await reader.read('acme', id);
    if (Date.now() - published < ageMs) expect(early?.events).toHaveLength(1);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, published + ageMs + 300 - Date.now())));
    expect(await reader.read('acme', id)).toBeUndefined();
    // An event for it now finds no timeline and brings none back.
    reader.record('acme', id, push('fay', 1));
    await reader.flush();
    expect(await reader.read('acme', id)).toBeUndefined();
    const destination = channels.destination('acme', 'USER', 'fay');
    const history = await short.broker.readAfter({ tenantKey: channels.tenantKey('acme'), streams: [destination.stream], after: { epoch: undefined, ms: 0, seq: 0 }, limit: 10 });
    expect(history).toMatchObject({ gap: false, entries: [{ id }] });
  });
});
