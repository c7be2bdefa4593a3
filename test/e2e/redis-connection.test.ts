/**
 * The ioredis options of src/redis/connection.ts against real local topologies: a
 * Sentinel-backed client finds the master through the sentinels and follows a failover to
 * the promoted replica; a Cluster client reaches every master from one seed. The broker's
 * sharded Pub/Sub is tested in test/contract/broker.test.ts.
 */
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { clusterClientOptions, keepSentinelClientConnected, sentinelClientOptions } from '../../src/redis/connection.js';
import { PATIENCE_MS } from '../support/patience.js';
import { startClusterTopology, startSentinelTopology, type ClusterTopology, type SentinelTopology } from '../support/redis-topology.js';

const COMMAND_TIMEOUT_MS = 2000;

/**
 * The next `event` of `emitter`. Not `events.once`: that rejects on the 'error' events
 * a client emits while it reconnects, which here are expected.
 */
function next(emitter: Redis | Cluster, event: 'ready' | 'close'): Promise<void> {
  return new Promise((resolve) => emitter.once(event, () => resolve()));
}

/**
 * `command`'s answer once the client has settled on its master. A client that connected
 * again through the sentinels before its failover detector heard `+switch-master` is
 * dropped and connects once more when it does (seen on a loaded machine, about 2 s into
 * the failover); a command sent in between fails unsent, and is sent again here. Any
 * other failure is the test's.
 */
async function settled<T>(command: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + PATIENCE_MS;
  for (;;) {
    try {
      return await command();
    } catch (error) {
      if (!/Stream isn't writeable|Connection is closed/.test(String(error)) || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/** The port of the server `client` is talking to, as that server reports it. */
async function serverPort(client: Redis | Cluster, node?: Redis): Promise<number> {
  const info = String(await (node ?? client).call('INFO', 'server'));
  return Number(/tcp_port:(\d+)/.exec(info)?.[1]);
}

describe('sentinelClientOptions', () => {
  let topology: SentinelTopology;
  const clients: Redis[] = [];
  beforeAll(async () => {
    topology = await startSentinelTopology();
  });
  afterAll(async () => {
    for (const client of clients) client.disconnect();
    await topology?.stop();
  });

  it('connects to the master through the sentinels and, after the master dies, to the promoted replica', async () => {
    const client = new Redis(
      sentinelClientOptions(
        { sentinels: topology.sentinels, masterName: topology.masterName, sentinelPassword: undefined, password: undefined },
        COMMAND_TIMEOUT_MS,
      ),
    );
    client.on('error', () => undefined); // the kill below makes the connection fail; 'ready' is what counts
    // As Herald connects (herald.ts): ioredis 5 gives up a reconnection its failover
    // detector closed on +switch-master, and this connects it again (under two CPU hogs
    // the test once waited for 'ready' until it timed out without it).
    let closing = false;
    keepSentinelClientConnected(client, () => !closing, { warn: () => undefined });
    clients.push(client);
    onTestFinished(() => {
      closing = true;
    });
    await next(client, 'ready');
    const first = await topology.master();
    expect(await serverPort(client)).toBe(first.port);
    await client.set('before-failover', '1');
    expect(await client.wait(1, 1000)).toBe(1);

    const closed = next(client, 'close');
    const readyAgain = next(client, 'ready');
    const killed = await topology.killMaster();
    await closed;
    // No offline queue: a command while the master is gone fails at once, unsent.
    await expect(client.set('while-down', '1')).rejects.toThrow(/Stream isn't writeable|Connection is closed/);

    const promoted = await topology.waitForPromotion(killed, 10_000);
    await readyAgain;
    expect(await settled(() => serverPort(client))).toBe(promoted.port);
    expect(await settled(() => client.get('before-failover'))).toBe('1');
    expect(await settled(() => client.set('after-failover', '1'))).toBe('OK'); // a master: no READONLY
    expect(await settled(() => client.exists('while-down'))).toBe(0);
  });
});

describe('clusterClientOptions', () => {
  let cluster: ClusterTopology;
  const clients: Cluster[] = [];
  beforeAll(async () => {
    cluster = await startClusterTopology();
  });
  afterAll(async () => {
    for (const client of clients) client.disconnect();
    await cluster?.stop();
  });

  /** One hash tag per master: `{t<n>}` whose slot that master serves. */
  async function tagPerMaster(): Promise<Map<string, string>> {
    const masters = (await cluster.nodes()).filter((row) => row.role === 'master');
    const tags = new Map<string, string>();
    for (let n = 0; tags.size < masters.length; n++) {
      const owner = await cluster.ownerOf(await cluster.slotOf(`{t${n}}`));
      if (!tags.has(owner.id)) tags.set(owner.id, `t${n}`);
    }
    return tags;
  }

  function connect(): Cluster {
    // One seed only: the client discovers the other nodes.
    const [seed] = cluster.seeds;
    const { startupNodes, options } = clusterClientOptions({ nodes: seed ? [seed] : [], password: undefined }, COMMAND_TIMEOUT_MS);
    expect(startupNodes).toHaveLength(1);
    const client = new Cluster(startupNodes, options);
    client.on('error', () => undefined);
    clients.push(client);
    return client;
  }

  it('reaches every master from one seed node', async () => {
    const client = connect();
    await next(client, 'ready');
    const tags = await tagPerMaster();
    expect(tags.size).toBe(3);
    for (const [masterId, tag] of tags) {
      const key = `herald:{${tag}}:meta`;
      expect(await client.hset(key, 'seq', masterId)).toBe(1);
      const owner = cluster.servers.find((node) => node.id === masterId);
      expect(await owner?.call('HGET', key, 'seq')).toBe(masterId);
    }
    const mastersSeen = client.nodes('master').map((node) => node.options.port).sort();
    expect(mastersSeen).toEqual(
      (await cluster.nodes())
        .filter((row) => row.role === 'master')
        .map((row) => row.port)
        .sort(),
    );
  });
});
