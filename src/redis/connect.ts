/**
 * Making a Herald connection to wherever the settings say Redis is — one node
 * (`REDIS_URL`), behind Sentinel (`REDIS_SENTINELS`) or a Cluster (`REDIS_CLUSTER_NODES`)
 * — with the client rules of `connection.ts`. The broker and the push worker and stores
 * all connect through here, so each runs wherever the other does.
 */
import calculateSlot from 'cluster-key-slot';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { redactUrl } from '../common/startup.js';
import type { HeraldConfig } from '../config/index.js';
import { clusterClientOptions, keepSentinelClientConnected, redisClientOptions, sentinelClientOptions, shardSubscriberOptions } from './connection.js';

/** A command client: one connection (one node, Sentinel) or a Cluster's. */
export type RedisClient = Redis | Cluster;

/** Where Redis is, and how long a command may wait for its answer. */
export type RedisSettings = Pick<HeraldConfig, 'redisUrl' | 'redisCommandTimeoutMs'> & Partial<Pick<HeraldConfig, 'redisSentinel' | 'redisCluster'>>;

export interface RedisConnectOptions {
  /** Its name in CLIENT LIST (`herald-publisher`, `herald-push-reader`…). */
  name: string;
  logger: Pick<Console, 'warn'>;
  /**
   * For a connection that blocks (XREADGROUP BLOCK): how long the longest block lasts.
   * Its command and socket timeouts are this much longer than `REDIS_COMMAND_TIMEOUT_MS`,
   * so a block is not taken for a silent connection. @default 0
   */
  blockMs?: number;
  /** Laid over Herald's own options on one node and behind Sentinel (tests reconnect faster). @default none */
  overrides?: RedisOptions;
}

export interface RedisConnection {
  readonly client: RedisClient;
  /** The connections under `client` now, for the liveness watch (a Cluster's nodes come and go). */
  connections(): Redis[];
  /** ioredis' last connection error, to say why Redis is unreachable. */
  lastError(): string | undefined;
  /** Resolves once `client` is ready (Herald's connections queue nothing before). */
  ready(): Promise<void>;
  /** From now on a Sentinel client that ioredis gives up on is not connected again (its owner is closing it). */
  letGo(): void;
  /** Quits, or drops the connection when it cannot quit; lets it go first. */
  close(): Promise<void>;
}

/** Where the settings say Redis is, for messages (password hidden); undefined when they name none. */
export function redisLocation(settings: RedisSettings): string | undefined {
  if (settings.redisUrl !== undefined) return `REDIS_URL ${redactUrl(settings.redisUrl)}`;
  if (settings.redisSentinel !== undefined) {
    const { sentinels, masterName } = settings.redisSentinel;
    return `REDIS_SENTINELS ${sentinels.map(({ host, port }) => `${host}:${port}`).join(',')} (master "${masterName}")`;
  }
  if (settings.redisCluster !== undefined) return `REDIS_CLUSTER_NODES ${settings.redisCluster.nodes.map(({ host, port }) => `${host}:${port}`).join(',')}`;
  return undefined;
}

/**
 * A client to the Redis `settings` name (one of them must). Behind Sentinel it follows a
 * failover to the promoted replica, and is connected again whenever ioredis gives up on
 * it until it is closed; on a Cluster it follows the slot map.
 */
export function connectRedis(settings: RedisSettings, options: RedisConnectOptions): RedisConnection {
  const { redisUrl, redisSentinel, redisCluster } = settings;
  const { name: connectionName, logger } = options;
  const timeoutMs = settings.redisCommandTimeoutMs + (options.blockMs ?? 0);
  const timeouts = options.blockMs === undefined ? {} : { commandTimeout: timeoutMs, socketTimeout: timeoutMs };
  let lastError: string | undefined;
  let closing = false;
  let client: RedisClient;
  if (redisCluster !== undefined) {
    const { startupNodes, options: clusterOptions } = clusterClientOptions(redisCluster, settings.redisCommandTimeoutMs);
    client = new Cluster(startupNodes, { ...clusterOptions, redisOptions: { ...clusterOptions.redisOptions, ...timeouts, connectionName } });
  } else if (redisSentinel !== undefined) {
    client = new Redis({ ...sentinelClientOptions(redisSentinel, settings.redisCommandTimeoutMs), ...timeouts, ...options.overrides, connectionName });
    keepSentinelClientConnected(client, () => !closing, logger);
  } else if (redisUrl !== undefined) {
    client = new Redis(redisUrl, { ...redisClientOptions(settings.redisCommandTimeoutMs), ...timeouts, ...options.overrides, connectionName });
  } else {
    throw new Error('connectRedis: no Redis is configured (REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES)');
  }
  client.on('error', (error: Error) => (lastError = error.message));
  return {
    client,
    connections: () => (client instanceof Cluster ? client.nodes() : [client]),
    lastError: () => lastError,
    ready: () => (client.status === 'ready' ? Promise.resolve() : new Promise((resolve) => client.once('ready', () => resolve()))),
    letGo: () => void (closing = true),
    async close() {
      closing = true;
      await client.quit().catch(() => client.disconnect());
    },
  };
}

/**
 * A sharded subscriber connection (SSUBSCRIBE only) to the Cluster master at `node`, as
 * the broker opens one per master; it does not reconnect (its owner replaces it).
 */
export function connectShardSubscriber(settings: RedisSettings, node: { host: string; port: number }): Redis {
  if (settings.redisCluster === undefined) throw new Error('connectShardSubscriber: REDIS_CLUSTER_NODES is not set');
  return new Redis({ ...shardSubscriberOptions(settings.redisCluster, settings.redisCommandTimeoutMs), ...node, connectionName: 'herald-subscriber' });
}

/**
 * The connection of `client` that serves `key` now: `client` itself on one node or behind
 * Sentinel; on a Cluster, its connection to the master of the key's slot, if it has one.
 */
export function connectionFor(client: RedisClient, key: string): Redis | undefined {
  if (!(client instanceof Cluster)) return client;
  const owner = client.slots[calculateSlot(key)]?.[0];
  return owner === undefined ? undefined : client.nodes('master').find(({ options }) => `${options.host}:${options.port}` === owner);
}
