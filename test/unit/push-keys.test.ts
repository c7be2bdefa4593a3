/**
 * The push stream's shards (`src/push/keys.ts`): one node keeps the stream of before; a
 * Cluster's shards spread evenly over the slot range, and a tenant always maps to one.
 */
import calculateSlot from 'cluster-key-slot';
import { describe, expect, it } from 'vitest';
import { createPushKeys } from '../../src/push/keys.js';

describe('push stream shards', () => {
  it('one shard is the stream of before', () => {
    const keys = createPushKeys('herald');
    expect(keys.streams).toEqual(['herald:push:stream']);
    expect(keys.shardOf('acme')).toBe(0);
  });

  it("each of n shards is its own hash tag, in its own n-th of the slot range, and a tenant's shard is the one holding its slot", () => {
    const keys = createPushKeys('herald', { streamShards: 8 });
    expect(keys.streams).toHaveLength(8);
    for (const [shard, stream] of keys.streams.entries()) {
      expect(stream).toMatch(/^herald:push:stream:\{herald:push:[0-9-]+\}$/);
      const slot = calculateSlot(stream);
      expect(slot).toBeGreaterThanOrEqual((shard * 16384) / 8);
      expect(slot).toBeLessThan(((shard + 1) * 16384) / 8);
    }
    const tenants = Array.from({ length: 200 }, (_, n) => `tenant-${n}`);
    for (const tenant of tenants) {
      const shard = keys.shardOf(tenant);
      expect(Math.floor(calculateSlot(`{${tenant}}`) / 2048)).toBe(shard);
      expect(createPushKeys('herald', { streamShards: 8 }).shardOf(tenant)).toBe(shard); // stable
    }
    const used = new Set(tenants.map((tenant) => keys.shardOf(tenant)));
    expect(used.size).toBe(8);
  });

  it('deployments with other prefixes get other shards', () => {
    const a = createPushKeys('a', { streamShards: 4 });
    const b = createPushKeys('b', { streamShards: 4 });
    expect(a.streams.filter((stream) => b.streams.includes(stream))).toEqual([]);
  });

  it('refuses a shard count that is not a whole number from 1 to 1024', () => {
    for (const streamShards of [0, 1.5, 1025]) expect(() => createPushKeys('herald', { streamShards })).toThrow(RangeError);
  });
});
