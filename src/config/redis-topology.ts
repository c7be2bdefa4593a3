/**
 * How Herald reaches Redis: one node (`REDIS_URL`), Sentinel (`REDIS_SENTINELS` and the
 * variables that only mean something with it) or a Cluster (`REDIS_CLUSTER_NODES`) — at
 * most one of the three.
 */
import type { SettingsReader } from './settings-reader.js';
import type { RedisClusterSettings, RedisSentinelSettings } from './types.js';

/** The variables that each choose how Herald reaches Redis; at most one may be set. */
const REDIS_TOPOLOGY_VARIABLES = ['REDIS_URL', 'REDIS_SENTINELS', 'REDIS_CLUSTER_NODES'] as const;

export function readRedisSentinel(read: SettingsReader): RedisSentinelSettings | undefined {
  const sentinels = read.value('REDIS_SENTINELS');
  const masterName = read.value('REDIS_SENTINEL_MASTER');
  const sentinelPassword = read.value('REDIS_SENTINEL_PASSWORD');
  if (!read.isSet('REDIS_SENTINELS')) {
    for (const name of ['REDIS_SENTINEL_MASTER', 'REDIS_SENTINEL_PASSWORD'] as const) {
      if (read.isSet(name)) read.problem(`${name} is set but REDIS_SENTINELS is not: list the sentinels as host:port,host:port`);
    }
    return undefined;
  }
  if (masterName === undefined) {
    read.problem('REDIS_SENTINELS needs REDIS_SENTINEL_MASTER: the name the sentinels monitor the master under');
    return undefined;
  }
  if (/\s/.test(masterName)) {
    read.problem(`REDIS_SENTINEL_MASTER "${masterName}" must not contain spaces (Sentinel master names are one word)`);
    return undefined;
  }
  if (sentinels === undefined) return undefined;
  return { sentinels, masterName, sentinelPassword, password: read.value('REDIS_PASSWORD') };
}

export function readRedisCluster(read: SettingsReader): RedisClusterSettings | undefined {
  const nodes = read.value('REDIS_CLUSTER_NODES');
  return nodes === undefined ? undefined : { nodes, password: read.value('REDIS_PASSWORD') };
}

/** The problems of the topology as a whole: two ways to reach Redis, a password with none that takes it. */
export function checkRedisTopology(read: SettingsReader): void {
  const choices = REDIS_TOPOLOGY_VARIABLES.filter((name) => read.isSet(name));
  if (choices.length > 1) {
    read.problem(`${choices.join(' and ')} are set: set at most one of REDIS_URL, REDIS_SENTINELS and REDIS_CLUSTER_NODES (each says how to reach Redis)`);
  }
  if (read.isSet('REDIS_PASSWORD') && !read.isSet('REDIS_SENTINELS') && !read.isSet('REDIS_CLUSTER_NODES')) {
    read.problem('REDIS_PASSWORD is used only with REDIS_SENTINELS or REDIS_CLUSTER_NODES (with REDIS_URL, put it in the URL: redis://:password@host:port)');
  }
}
