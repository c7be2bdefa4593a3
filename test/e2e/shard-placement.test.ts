/**
 * On a Redis Cluster the subscribe server places its channels (SSUBSCRIBE on each slot's
 * master) again and again as the slot map changes, one placement at a time
 * (`redis-shard-channels.ts`). A placement waits on a slot-map refresh, a connection and
 * an SSUBSCRIBE; if one of them never settles, no later placement may be stopped by it.
 * Here a real client on a real 3-master cluster loses the callback of the first
 * slot-map refresh the placement asks for (the refresh is never started: as one stuck in
 * the client would look from outside), and the channels must still be placed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, Redis } from 'ioredis';
import { createShardChannels } from '../../src/broker/redis-shard-channels.js';
import { clusterClientOptions, shardSubscriberOptions } from '../../src/redis/connection.js';
import { waitFor } from '../support/herald.js';
import { startClusterTopology, type ClusterTopology } from '../support/redis-topology.js';

const COMMAND_TIMEOUT_MS = 1000;
const ATTEMPT_TIMEOUT_MS = 1500;

let topology: ClusterTopology;
beforeAll(async () => {
  topology = await startClusterTopology();
}, 60_000);
afterAll(() => topology?.stop());

describe('placing sharded channels', () => {
  it('a slot-map refresh whose answer never comes is given up after attemptTimeoutMs, logged with what it waited on, and the next attempt places the channels', async () => {
    const settings = { nodes: topology.seeds, password: undefined };
    const { startupNodes, options } = clusterClientOptions(settings, COMMAND_TIMEOUT_MS);
    const client = new Cluster(startupNodes, options);
    const warnings: string[] = [];
    const reportChannel = 'herald:_reports:placement-test';
    let channels: ReturnType<typeof createShardChannels> | undefined;
    try {
      await waitFor(() => client.status === 'ready', 'the cluster client ready', 15_000);
      // Only the placement's refreshes pass a callback; ioredis' own (periodic, after MOVED) pass none.
      const refresh = client.refreshSlotsCache.bind(client);
      let lost = 0;
      client.refreshSlotsCache = (callback?: (error?: Error | null) => void) => {
        if (callback !== undefined && lost === 0) {
          lost += 1;
          return;
        }
        refresh(callback);
      };
      channels = createShardChannels({
        cluster: client,
        connect: (node) => new Redis({ ...shardSubscriberOptions(settings, COMMAND_TIMEOUT_MS), ...node }),
        reportChannel,
        onReport: () => undefined,
        onDelivered: () => undefined,
        logger: { warn: (message: string) => warnings.push(message), error: (message: string) => warnings.push(message) },
        retryDelayMs: 50,
        attemptTimeoutMs: ATTEMPT_TIMEOUT_MS,
      });
      const started = Date.now();
      await waitFor(() => channels?.heard === true, 'the report channel heard', 15_000);
      expect(lost).toBe(1);
      // Not before the stuck attempt was given up.
      expect(Date.now() - started).toBeGreaterThanOrEqual(ATTEMPT_TIMEOUT_MS - 50);
      expect(warnings).toContainEqual(
        expect.stringMatching(new RegExp(`placing the sharded channels took over ${ATTEMPT_TIMEOUT_MS} ms \\(waiting on a slot-map refresh\\)\\); retrying in 50 ms`)),
      );
      // Heard where Redis says: on the master of its slot, once.
      const owner = await topology.ownerOf(await topology.slotOf(reportChannel));
      expect(await owner.call('PUBSUB', 'SHARDNUMSUB', reportChannel)).toEqual([reportChannel, 1]);
    } finally {
      await channels?.close();
      client.disconnect();
    }
  }, 60_000);
});
