/**
 * Push on a Redis Cluster (3 masters, 3 replicas): the servers register devices and
 * follows and queue pushes, and the push worker (`main.ts push`) sends them, all on
 * `REDIS_CLUSTER_NODES`. The push stream is cut into shards spread over the masters, a
 * tenant on one of them. Seen-live marks keep a user who received a notification live
 * from being pushed, and a dead letter is replayed with `replay.js` on the same settings.
 * The master serving a tenant's data and its push shard is killed
 * while notifications are sent through a publish server with `REDIS_MIN_REPLICAS_ACKED=1`:
 * every one it acknowledged is pushed, and once the replica has taken over, pushes to a
 * user and to a topic go out again.
 */
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readConfig } from '../../../src/config/index.js';
import { pushKeysFor } from '../../../src/push/index.js';
import { startPushWorker } from '../../../src/push/start.js';
import { createPushQueue } from '../../../src/push/queue.js';
import { runReplayCli } from '../../../src/replay.js';
import { startPushDeployment, type PushDeployment, type SendOutcome } from '../../support/push-deployment.js';
import { eventually, quietLogger } from '../../support/push-worker.js';
import { userToken } from '../../support/tokens.js';
import { closeAllClients, collect, wsClient } from '../../support/ws.js';
import { startClusterTopology, type ClusterNode, type ClusterTopology } from '../../support/redis-topology.js';

let cluster: ClusterTopology;
let deployment: PushDeployment;
const seeds = (): string => cluster.seeds.map(({ host, port }) => `${host}:${port}`).join(',');

beforeAll(async () => {
  cluster = await startClusterTopology();
  // 8 sends at once to the receiver (32 by default): its 1 s answers hold a backlog even when sends are slow
  deployment = await startPushDeployment({ REDIS_CLUSTER_NODES: seeds(), PUSH_DESTINATION_CONCURRENCY: '8' });
}, 60_000);
afterAll(async () => {
  await closeAllClients();
  await deployment?.stop();
  await cluster?.stop();
});

/** Fails naming what is missing unless every outcome's notification was pushed to `tenant`'s `user`. */
async function expectPushed(tenant: string, user: string, outcomes: readonly SendOutcome[], timeoutMs = 20_000): Promise<void> {
  const missing = (): SendOutcome[] => outcomes.filter((outcome) => !deployment.pushed(tenant, user).includes(outcome.id ?? ''));
  await eventually(() => missing().length === 0, `the pushes of ${outcomes.length} acknowledged notifications to ${user}`, timeoutMs).catch((error: unknown) => {
    throw new Error(`${String(error)}; missing ${missing().map((outcome) => outcome.text).join(', ')}; logged: ${deployment.logged.slice(-5).join(' | ')}`);
  });
}

/** The master that serves `key` now. */
async function masterOf(key: string): Promise<ClusterNode> {
  return cluster.ownerOf(await cluster.slotOf(key));
}

describe('push on a Redis Cluster', () => {
  const keys = pushKeysFor({ channelPrefix: 'herald', redisCluster: { nodes: [], password: undefined } });

  it("queues each tenant's pushes on its one shard, and the shards on every master", async () => {
    // A prefix of its own: the running worker reads none of these.
    const spread = pushKeysFor({ channelPrefix: 'spread', redisCluster: { nodes: [], password: undefined } });
    const client = new Cluster(cluster.seeds.map(({ host, port }) => ({ host, port })));
    try {
      const queue = createPushQueue({ redis: client, keys: spread });
      const tenants = Array.from({ length: 40 }, (_, n) => `tenant-${n}`);
      for (const tenant of tenants) {
        for (let i = 0; i < 2; i++) {
          await queue.enqueue({ id: `e_${i}-1`, tenant, audience: 'USER', to: 'bob', text: 'hi', timestamp: 1, sender: 'test' }, 'ALWAYS');
        }
      }
      const lengths = await Promise.all(spread.streams.map((stream) => client.xlen(stream)));
      const used = spread.streams.filter((_, shard) => (lengths[shard] ?? 0) > 0);
      const masters = new Set(await Promise.all(used.map(async (stream) => (await masterOf(stream)).address)));
      expect(used.length).toBeGreaterThan(1);
      expect(masters.size).toBe(3);
      // Every tenant's two entries on its own shard, in order, and nowhere else.
      for (const tenant of tenants) {
        const stream = spread.streams[spread.shardOf(tenant)] ?? '';
        const entries = await client.xrange(stream, '-', '+');
        const own = entries.filter(([, fields]) => fields.join(' ').includes(`"tenant":"${tenant}"`));
        expect(own.map(([, fields]) => (JSON.parse(fields[1] ?? '{}') as { notification: { id: string } }).notification.id)).toEqual(['e_0-1', 'e_1-1']);
      }
      expect(lengths.reduce((sum, length) => sum + length, 0)).toBe(tenants.length * 2);
    } finally {
      client.disconnect();
    }
  });

  it('a worker holds one reader connection per shard, none to other nodes, and stop() ends their blocked reads at once', async () => {
    const readerConnections = async (): Promise<number> => {
      let count = 0;
      for (const node of cluster.servers) count += String(await node.call('CLIENT', 'LIST')).split('\n').filter((line) => line.includes(' name=herald-push-reader ')).length;
      return count;
    };
    const shards = keys.streams.length;
    // The deployment's worker has its readers; a second one adds as many, however long it runs.
    await eventually(async () => (await readerConnections()) === shards, "the deployment's worker's readers");
    const worker = await startPushWorker(readConfig({ REDIS_CLUSTER_NODES: seeds(), REDIS_COMMAND_TIMEOUT_MS: '1000' }), quietLogger);
    await eventually(async () => (await readerConnections()) === 2 * shards, "the second worker's readers");
    // Slot-map refreshes (every 2 s) must not have the readers connect to other nodes.
    await new Promise((resolve) => setTimeout(resolve, 4500));
    expect(await readerConnections()).toBe(2 * shards);
    // Each read blocks for 5 s: stopping well within that means each was unblocked.
    const stopping = Date.now();
    await worker.stop();
    expect(Date.now() - stopping).toBeLessThan(2500);
    await eventually(async () => (await readerConnections()) === shards, "the second worker's readers to close");
  });

  it('pushes to a user and to a topic through the worker on REDIS_CLUSTER_NODES, for tenants on every master', async () => {
    // Tenants until their data and their push shards are on every master.
    const tenants: string[] = [];
    const dataMasters = new Set<string>();
    const shardMasters = new Set<string>();
    for (let n = 0; dataMasters.size < 3 || shardMasters.size < 3; n++) {
      const tenant = `t-${n}`;
      const [data, shard] = await Promise.all([masterOf(`{${tenant}}`), masterOf(keys.streams[keys.shardOf(tenant)] ?? '')]);
      if (dataMasters.has(data.id) && shardMasters.has(shard.id)) continue;
      dataMasters.add(data.id);
      shardMasters.add(shard.id);
      tenants.push(tenant);
    }
    for (const tenant of tenants) {
      await deployment.register(tenant, 'bob');
      await deployment.register(tenant, 'carol');
      await deployment.follow(tenant, 'carol', 'news');
      const toBob = await deployment.send(tenant, 'bob', 'hello bob', { replicated: false });
      const toNews = await deployment.send(tenant, 'news', 'breaking', { audience: 'TOPIC', replicated: false });
      expect([toBob.message, toNews.message]).toEqual([undefined, undefined]);
      await expectPushed(tenant, 'bob', [toBob]);
      await expectPushed(tenant, 'carol', [toNews]);
    }
  });

  it('WHEN_OFFLINE: a user who received the notification live is not pushed (seen-live marks on the Cluster), one who did not is', async () => {
    const tenant = 't-live';
    await deployment.register(tenant, 'dave');
    await deployment.register(tenant, 'erin');
    const live = collect(wsClient(deployment.wsUrl, { token: userToken('dave', { tenant }) }), 'subscription { onNotificationReceived(userName: "dave") { id } }');
    // the subscription is open once a notification sent now reaches it
    await eventually(async () => {
      await deployment.send(tenant, 'dave', 'ping', { push: 'NEVER', replicated: false });
      return live.results.length > 0;
    }, "dave's subscription to open");
    const skippedBefore = deployment.worker.pushWorker?.counters.skippedSeenLive ?? 0;
    const toDave = await deployment.send(tenant, 'dave', 'while online', { push: 'WHEN_OFFLINE', replicated: false });
    const toErin = await deployment.send(tenant, 'erin', 'while offline', { push: 'WHEN_OFFLINE', replicated: false });
    expect([toDave.message, toErin.message]).toEqual([undefined, undefined]);
    await expectPushed(tenant, 'erin', [toErin]);
    // dave's entry is done once its skip is counted: no push for it came, nor will.
    await eventually(() => (deployment.worker.pushWorker?.counters.skippedSeenLive ?? 0) > skippedBefore, "dave's push skipped as seen live");
    expect(deployment.pushed(tenant, 'dave')).toEqual([]);
  });

  it('a push its webhook refuses is dead-lettered, and replay.js on REDIS_CLUSTER_NODES sends it again', async () => {
    const tenant = 't-dead';
    await deployment.register(tenant, 'frank');
    deployment.hooks.answer = (request) => ({ status: request.path === `/${tenant}/frank` ? 400 : 204 });
    const refused = await deployment.send(tenant, 'frank', 'refused', { replicated: false });
    const env = { REDIS_CLUSTER_NODES: seeds() };
    let letter: { id: string } | undefined;
    await eventually(async () => {
      const lines: string[] = [];
      expect(await runReplayCli(['list', '--count', '1000'], env, (line) => lines.push(line))).toBe(0);
      letter = lines.map((line) => JSON.parse(line) as { id: string; notification: { id: string } }).find((listed) => listed.notification.id === refused.id);
      return letter !== undefined;
    }, 'the dead letter', 20_000);
    deployment.hooks.answer = () => ({ status: 204 });
    const attempts = deployment.pushed(tenant, 'frank').length;
    const lines: string[] = [];
    expect(await runReplayCli(['replay', '--id', letter?.id ?? ''], env, (line) => lines.push(line))).toBe(0);
    expect(lines).toEqual(['replayed 1 dead letter']);
    await eventually(() => deployment.pushed(tenant, 'frank').length > attempts, 'the replayed push');
    expect(deployment.pushed(tenant, 'frank').at(-1)).toBe(refused.id);
  });

  it('a killed master: every push of a notification a replica acknowledged goes out, and pushes work on the promoted replica', async () => {
    // A tenant whose data and push shard the same master serves: the one killed.
    let tenant = '';
    let master: ClusterNode | undefined;
    for (let n = 0; master === undefined; n++) {
      const candidate = `victim-${n}`;
      const [data, shard] = await Promise.all([masterOf(`{${candidate}}`), masterOf(keys.streams[keys.shardOf(candidate)] ?? '')]);
      if (data.id === shard.id) [tenant, master] = [candidate, data];
    }
    await deployment.register(tenant, 'bob');
    await deployment.register(tenant, 'carol');
    await deployment.follow(tenant, 'carol', 'news');

    // Receivers that take their time: the worker holds unfinished pushes when the master dies.
    deployment.hooks.answer = () => ({ status: 204, delayMs: 1000 });
    const outcomes: SendOutcome[] = [];
    let stopping = false;
    let sent = 0;
    const loop = (async () => {
      while (!stopping) {
        const outcome = await deployment.send(tenant, 'bob', `n ${sent++}`);
        outcomes.push(outcome);
        await new Promise((resolve) => setTimeout(resolve, outcome.id === undefined ? 50 : 5));
      }
    })();
    const acknowledged = (): SendOutcome[] => outcomes.filter((outcome) => outcome.id !== undefined);
    let unpushedAtKill = 0;
    try {
      const unpushed = (): number => acknowledged().filter((outcome) => !deployment.pushed(tenant, 'bob').includes(outcome.id ?? '')).length;
      await eventually(() => acknowledged().length >= 20 && unpushed() >= 5, '20 acknowledged sends, 5 of them not yet pushed', 30_000).catch((error: unknown) => {
        throw new Error(`${String(error)}: ${acknowledged().length} acknowledged, ${unpushed()} not yet pushed`);
      });
      unpushedAtKill = unpushed();
      await cluster.killMaster(master);
      await cluster.waitForFailover(master, 15_000);
    } finally {
      stopping = true;
      await loop;
    }
    const codes = new Set(outcomes.filter((outcome) => outcome.id === undefined).map((outcome) => outcome.code));
    expect([...codes].every((code) => code === 'SERVICE_UNAVAILABLE' || code === 'OUTCOME_UNKNOWN')).toBe(true);
    await expectPushed(tenant, 'bob', acknowledged());
    deployment.hooks.answer = () => ({ status: 204 });
    const pushes = deployment.pushed(tenant, 'bob');
    console.info(
      `push on a Cluster, failover: ${outcomes.length} sends, ${acknowledged().length} acknowledged by a replica and all pushed (${unpushedAtKill} not yet when the master died); ` +
        `the rest failed (${[...codes].join(', ')}); ${pushes.length - new Set(pushes).size} pushes sent twice`,
    );

    // The servers and the worker followed the slots to the promoted replica.
    let again: SendOutcome | undefined;
    await eventually(async () => (again = await deployment.send(tenant, 'bob', 'after the failover', { replicated: false })).id !== undefined, 'a send on the promoted master', 20_000);
    const topic = await deployment.send(tenant, 'news', 'news after the failover', { audience: 'TOPIC', replicated: false });
    expect(topic.code).toBeUndefined();
    await expectPushed(tenant, 'bob', again ? [again] : []);
    await expectPushed(tenant, 'carol', [topic]);
  }, 90_000);
});
