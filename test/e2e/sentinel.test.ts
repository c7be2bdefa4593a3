/**
 * Herald on Redis behind Sentinel: master + replica + 3 sentinels,
 * a subscribe server and a publish server with brokers of their own on
 * `REDIS_SENTINELS`, the publisher with `REDIS_MIN_REPLICAS_ACKED=1`. The master is
 * killed while notifications are being published; what every mutation reported is set
 * against what a live subscriber and a client resuming with `since` received — counted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PublishRequest } from '../../src/broker/types.js';
import { OutcomeUnknownError } from '../../src/common/failures.js';
import { encodeNotification } from '../../src/common/notification.js';
import type { RedisSentinelSettings } from '../../src/config/index.js';
import { channels, createTestBroker, startPublishServer, startSubscribeServer, stopAll, waitFor } from '../support/herald.js';
import { errorCode, postGraphQL, SEND } from '../support/http.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import { startSentinelTopology, waitUntil, type SentinelTopology, type TopologyNode } from '../support/redis-topology.js';
import { serviceToken, userToken } from '../support/tokens.js';
import { closeAllClients, collect, wsClient, type Collected } from '../support/ws.js';

const RESUME = `subscription Resume($userName: String!, $since: ID) {
  onNotificationReceived(userName: $userName, since: $since) { id text }
}`;

/** Publishers sending at once, so that some mutation is in flight when the master dies. */
const PUBLISHERS = 3;
/** Notifications acknowledged by a replica before the kill. */
const BEFORE_KILL = 30;

interface Outcome {
  readonly text: string;
  /** Whether the send started once the sentinels had promoted the replica. */
  readonly afterPromotion: boolean;
  /** The notification's id when the mutation succeeded. */
  readonly id: string | undefined;
  readonly code: string | undefined;
  readonly message: string | undefined;
}

const notifications = (events: Collected): Array<{ id: string; text: string }> =>
  events.results.filter((result) => result.data).map((result) => result.data?.['onNotificationReceived'] as { id: string; text: string });

async function numsub(node: TopologyNode, channel: string): Promise<number> {
  const [, count] = (await node.call('PUBSUB', 'NUMSUB', channel)) as [string, number];
  return Number(count);
}

describe('Herald on Sentinel with REDIS_MIN_REPLICAS_ACKED=1', () => {
  let topology: SentinelTopology;
  let subscribeUrl: string;
  let publishUrl: string;
  const aliceChannel = channels.audienceChannel('acme', 'USER', 'alice');

  beforeAll(async () => {
    topology = await startSentinelTopology();
    const redisSentinel: RedisSentinelSettings = {
      sentinels: topology.sentinels,
      masterName: topology.masterName,
      sentinelPassword: undefined,
      password: undefined,
    };
    subscribeUrl = (await startSubscribeServer((await createTestBroker(undefined, { settings: { redisSentinel } })).broker)).wsUrl;
    const publishBroker = await createTestBroker(undefined, { settings: { redisSentinel, redisMinReplicasAcked: 1 } });
    publishUrl = (await startPublishServer(publishBroker.broker)).url;
  });
  afterAll(async () => {
    await closeAllClients();
    await stopAll();
    await topology?.stop();
  });

  it('follows the promoted replica; the live and the resuming subscriber get every notification reported sent', async () => {
    const live = collect(wsClient(subscribeUrl, { token: userToken('alice') }), RESUME, { userName: 'alice' });
    const firstMaster = await topology.master();
    await waitFor(async () => (await numsub(firstMaster, aliceChannel)) >= 1, "alice's subscription");

    const token = serviceToken();
    const { body } = await postGraphQL(publishUrl, SEND, { token, variables: { to: 'alice', text: 'cursor' } });
    const cursor = (body.data?.['sendNotification'] as { id: string }).id;

    const outcomes: Outcome[] = [];
    let promoted: TopologyNode | undefined;
    let stopping = false;
    let sent = 0;
    const publisher = async (): Promise<void> => {
      while (!stopping) {
        const text = `n ${sent++}`;
        const afterPromotion = promoted !== undefined;
        const response = await postGraphQL(publishUrl, SEND, { token, variables: { to: 'alice', text } });
        const id = (response.body.data?.['sendNotification'] as { id: string } | null | undefined)?.id;
        outcomes.push({ text, afterPromotion, id, code: errorCode(response), message: response.body.errors?.[0]?.message });
        // Paced like a client that backs off, so the failed sends do not crowd the machine.
        if (id === undefined) await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    const publishers = Array.from({ length: PUBLISHERS }, publisher);
    const succeeded = (): Outcome[] => outcomes.filter((outcome) => outcome.id !== undefined);

    await waitFor(() => succeeded().length >= BEFORE_KILL, `${BEFORE_KILL} acknowledged publishes`, 10_000);
    const killed = await topology.killMaster();
    promoted = await topology.waitForPromotion(killed, 15_000);
    // The promoted master has no replica left: a publish that reaches it is stored and
    // delivered, but WAIT 1 cannot be met, so the mutation says OUTCOME_UNKNOWN.
    const reachedNewMaster = (): Outcome[] => outcomes.filter((outcome) => outcome.afterPromotion && /replicas acknowledged/.test(outcome.message ?? ''));
    try {
      await waitFor(() => reachedNewMaster().length >= PUBLISHERS, 'publishes to reach the promoted master', 15_000).catch((error: unknown) => {
        const last = outcomes.slice(-3).map((outcome) => `${outcome.code}: ${outcome.message}`);
        throw new Error(`${String(error)}; the last outcomes: ${last.join(' | ')}`);
      });
    } finally {
      stopping = true;
      await Promise.all(publishers);
    }

    const acknowledged = succeeded();
    const codes = new Set(outcomes.filter((outcome) => outcome.id === undefined).map((outcome) => outcome.code));
    console.info(
      `sentinel failover: ${outcomes.length} publishes, ${acknowledged.length} acknowledged by a replica, ` +
        `${outcomes.length - acknowledged.length} failed (${[...codes].join(', ')}), ${reachedNewMaster().length} stored on the promoted master without a replica`,
    );
    expect(acknowledged.length).toBeGreaterThanOrEqual(BEFORE_KILL);
    expect([...codes].every((code) => code === 'SERVICE_UNAVAILABLE' || code === 'OUTCOME_UNKNOWN')).toBe(true);
    // Nothing reports success without a replica to acknowledge it.
    expect(acknowledged.filter((outcome) => outcome.afterPromotion)).toEqual([]);

    // The subscribe server's connection followed the failover to the promoted replica.
    await waitFor(async () => promoted !== undefined && (await numsub(promoted, aliceChannel)) >= 1, "alice's channel on the promoted master", 10_000).catch((error: unknown) => {
      throw new Error(`${String(error)} (the live subscription ${live.completed ? `ended: ${JSON.stringify(live.error)}` : 'is open'})`);
    });

    // The live subscriber kept its subscription: it has every acknowledged notification
    // (those published while its connection was down came from history) and those the
    // promoted master stored, once each.
    const expectedLive = [...acknowledged, ...reachedNewMaster()].map((outcome) => outcome.text);
    const liveTexts = (): Set<string> => new Set(notifications(live).map((notification) => notification.text));
    await waitFor(() => expectedLive.every((text) => liveTexts().has(text)), 'the live subscriber to catch up', 10_000).catch((error: unknown) => {
      throw new Error(`${String(error)}; missing: ${expectedLive.filter((text) => !liveTexts().has(text)).join(', ')}`);
    });
    expect(live.completed).toBe(false);
    const liveIds = notifications(live).map((notification) => notification.id);
    expect(new Set(liveIds).size).toBe(liveIds.length);

    // A client resuming from before the stream gets every acknowledged notification.
    const resumed = collect(wsClient(subscribeUrl, { token: userToken('alice') }), RESUME, { userName: 'alice', since: cursor });
    const resumedIds = (): Set<string> => new Set(notifications(resumed).map((notification) => notification.id));
    await waitFor(() => acknowledged.every((outcome) => outcome.id !== undefined && resumedIds().has(outcome.id)), 'the resuming client to get every acknowledged notification', 10_000).catch(
      (error: unknown) => {
        throw new Error(`${String(error)}; missing: ${acknowledged.filter((outcome) => !resumedIds().has(outcome.id ?? '')).map((outcome) => outcome.text).join(', ')}`);
      },
    );
    expect(acknowledged.filter((outcome) => resumedIds().has(outcome.id ?? ''))).toHaveLength(acknowledged.length);
  }, 60_000);
});

describe('REDIS_MIN_REPLICAS_ACKED on one Redis, without and then with a replica', () => {
  const servers: RedisServer[] = [];
  afterAll(async () => {
    await stopAll();
    await Promise.all(servers.map((server) => server.stop()));
  });

  it('reports OUTCOME_UNKNOWN for a publish no replica acknowledged (a retry with its key too), success once one does', async () => {
    const master = await startRedisServer();
    servers.push(master);
    const { broker } = await createTestBroker(master.url, { settings: { redisMinReplicasAcked: 1 } });
    const destination = channels.destination('acme', 'USER', 'alice');
    const request = (text: string, key: string): PublishRequest => ({
      destination,
      tenantKey: channels.tenantKey('acme'),
      payload: encodeNotification({ text, timestamp: 1_700_000_000, audience: 'USER', sender: 'billing' }),
      idempotency: { key: channels.idempotencyKey('acme', 'billing', key), windowMs: 60_000 },
      countDeliveries: false,
    });
    const inspect = master.client();

    const lone = broker.publish(request('unreplicated', 'k1'));
    await expect(lone).rejects.toBeInstanceOf(OutcomeUnknownError);
    await expect(lone).rejects.toThrow(/only 0 of 1 replicas acknowledged/);
    expect(await inspect.xlen(destination.stream)).toBe(1); // stored on the master all the same
    // The retry finds the key, and still waits for a replica before it reports success.
    await expect(broker.publish(request('unreplicated', 'k1'))).rejects.toThrow(/only 0 of 1 replicas acknowledged/);

    const replica = await startRedisServer();
    servers.push(replica);
    await replica.client().replicaof('127.0.0.1', master.port);
    await waitUntil('the replica to be in sync', 10_000, async () => /slave0:.*state=online/.test(await inspect.info('replication')));

    // A retry from another connection (another publish server) waits for the first
    // publish's replication too, not only for its own writes: with the replica stopped,
    // neither reports success.
    const other = await createTestBroker(master.url, { settings: { redisMinReplicasAcked: 1 } });
    process.kill(replica.pid, 'SIGSTOP');
    try {
      await expect(broker.publish(request('lagging', 'k3'))).rejects.toThrow(/only 0 of 1 replicas acknowledged/);
      await expect(other.broker.publish(request('lagging', 'k3'))).rejects.toThrow(/only 0 of 1 replicas acknowledged/);
    } finally {
      process.kill(replica.pid, 'SIGCONT');
    }

    const retried = await broker.publish(request('unreplicated', 'k1'));
    expect(retried.duplicate).toBe(true);
    const fresh = await broker.publish(request('replicated', 'k2'));
    expect(fresh.duplicate).toBe(false);
    expect(await replica.client().xlen(destination.stream)).toBe(3);
  }, 30_000);
});
