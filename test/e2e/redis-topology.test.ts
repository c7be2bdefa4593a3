/**
 * The local topologies the Sentinel and Cluster suites run on do what those
 * suites rely on: Sentinel promotes the replica after the master dies, the cluster
 * serves sharded Pub/Sub on a slot's owner (and only inside its shard), and a slot
 * migration carries its keys to the new owner.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import {
  startClusterTopology,
  startSentinelTopology,
  type ClusterNode,
  type ClusterTopology,
  type SentinelTopology,
} from '../support/redis-topology.js';

describe('sentinel topology', () => {
  let topology: SentinelTopology;
  beforeAll(async () => {
    topology = await startSentinelTopology();
  });
  afterAll(() => topology?.stop());

  it('promotes the replica, with its data, within 10 s of killMaster()', async () => {
    const [first, replica] = topology.dataNodes;
    expect(await topology.master()).toBe(first);
    await first?.call('SET', 'survivor', 'yes');
    await first?.call('WAIT', 1, 1000); // on the replica before the kill

    const killedAt = Date.now();
    const killed = await topology.killMaster();
    const promoted = await topology.waitForPromotion(killed, 10_000);
    const tookMs = Date.now() - killedAt;

    expect(killed).toBe(first);
    expect(killed.alive).toBe(false);
    expect(promoted).toBe(replica);
    expect((await promoted.info('replication'))['role']).toBe('master');
    expect(await promoted.call('GET', 'survivor')).toBe('yes');
    expect(await topology.master()).toBe(promoted);
    expect(tookMs).toBeLessThan(10_000);
  });
});

describe('cluster topology', () => {
  let cluster: ClusterTopology;
  const open: Redis[] = [];
  beforeAll(async () => {
    cluster = await startClusterTopology();
  });
  afterAll(async () => {
    for (const client of open) client.disconnect();
    await cluster?.stop();
  });

  it('has 3 masters covering every slot, each with one replica', async () => {
    const rows = await cluster.nodes();
    const masters = rows.filter((row) => row.role === 'master');
    expect(masters).toHaveLength(3);
    expect(masters.flatMap((row) => row.slots).reduce((sum, [from, to]) => sum + to - from + 1, 0)).toBe(16384);
    for (const master of masters) expect(rows.filter((row) => row.masterId === master.id)).toHaveLength(1);
  });

  it("serves SSUBSCRIBE/SPUBLISH on a slot's owner, carried only inside that shard", async () => {
    const channel = 'herald:{acme}:user:bob';
    const slot = await cluster.slotOf(channel);
    const owner = await cluster.ownerOf(slot);
    const rows = await cluster.nodes();
    const ownerReplica = cluster.servers.find((node) => rows.find((row) => row.id === node.id)?.masterId === owner.id);
    const elsewhere = cluster.servers.filter((node) => node !== owner && node !== ownerReplica);
    const shardMessages = (node: ClusterNode): Promise<number> =>
      node.clusterInfo().then((info) => Number(info['cluster_stats_messages_publishshard_received'] ?? 0));
    const before = await Promise.all(cluster.servers.map(shardMessages));

    const subscriber = owner.connect();
    open.push(subscriber);
    const received = new Promise<string>((resolve) => subscriber.on('smessage', (_channel: string, message: string) => resolve(message)));
    await subscriber.ssubscribe(channel);
    const publisher = owner.connect();
    open.push(publisher);
    expect(await publisher.spublish(channel, 'hello')).toBe(1);
    expect(await received).toBe('hello');

    // Another master refuses the channel: it is not in its slots.
    const stranger = elsewhere.find((node) => rows.find((row) => row.id === node.id)?.role === 'master');
    await expect(stranger?.call('SPUBLISH', channel, 'misrouted')).rejects.toThrow(/MOVED/);

    // The owner's replica heard the message over the bus; no node of another shard did.
    expect(ownerReplica).toBeDefined();
    if (ownerReplica) {
      const replicaIndex = cluster.servers.indexOf(ownerReplica);
      expect(await shardMessages(ownerReplica)).toBe((before[replicaIndex] ?? 0) + 1);
    }
    for (const node of elsewhere) expect(await shardMessages(node)).toBe(before[cluster.servers.indexOf(node)]);
  });

  it("migrateSlot moves the slot's keys to the new owner", async () => {
    const keys = Array.from({ length: 250 }, (_, i) => `herald:{globex}:history:user:u${i}`);
    const slot = await cluster.slotOf(keys[0] ?? '');
    const from = await cluster.ownerOf(slot);
    for (const key of keys) await from.call('SET', key, key);
    const masters = (await cluster.nodes()).filter((row) => row.role === 'master').map((row) => row.id);
    const to = cluster.servers.find((node) => node !== from && masters.includes(node.id));
    if (!to) throw new Error('no other master');

    expect(await cluster.migrateSlot(slot, to, 100)).toBe(keys.length);

    expect(await cluster.ownerOf(slot)).toBe(to);
    expect(Number(await to.call('CLUSTER', 'COUNTKEYSINSLOT', slot))).toBe(keys.length);
    expect(Number(await from.call('CLUSTER', 'COUNTKEYSINSLOT', slot))).toBe(0);
    expect(await to.call('GET', keys[249] ?? '')).toBe(keys[249]);
    await expect(from.call('GET', keys[0] ?? '')).rejects.toThrow(new RegExp(`MOVED ${slot} ${to.address}`));
  });

  it("killMaster: the master's replica takes over its slots within 10 s", async () => {
    const slot = await cluster.slotOf('herald:{initech}:meta');
    const owner = await cluster.ownerOf(slot);
    const killedAt = Date.now();
    await cluster.killMaster(owner);
    const promoted = await cluster.waitForFailover(owner, 10_000);
    expect(Date.now() - killedAt).toBeLessThan(10_000);
    expect(promoted).not.toBe(owner);
    expect(await cluster.ownerOf(slot)).toBe(promoted);
    expect((await promoted.info('replication'))['role']).toBe('master');
  });
});
