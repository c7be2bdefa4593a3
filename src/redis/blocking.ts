/**
 * A connection for a blocking command (XREADGROUP BLOCK) on one key. A blocked connection
 * serves nothing else, so each blocking reader has its own:
 *
 * - one node, Sentinel: one connection made by `connectRedis` with the block's longer
 *   timeouts, which ioredis connects again (and moves to the promoted replica);
 * - a Cluster: one plain connection to the master serving the key's slot, as the command
 *   client's slot map says now. A command that fails on it drops it, and the next read
 *   connects to whichever master serves the slot then. (A `Cluster` per reader would,
 *   refreshing its slot map from random nodes, end up connected to every node.)
 */
import { Redis } from 'ioredis';
import { connectionFor, connectRedis, type RedisClient, type RedisSettings } from './connect.js';
import { redisClientOptions } from './connection.js';

export interface BlockingConnection {
  /**
   * The connection to block on now; on a Cluster, made first if there is none. Rejects
   * when none can be had now (no master known, or it refused): the caller tries later.
   */
  acquire(): Promise<Redis>;
  /** A command on `connection` failed: on a Cluster it is dropped, and the next `acquire` connects again. */
  failed(connection: Redis): void;
  /** Resolves once a first read can be sent (one node, Sentinel: the connection is ready). */
  ready(): Promise<void>;
  close(): Promise<void>;
}

export interface BlockingConnectionOptions {
  /** The key the blocking commands are on. */
  key: string;
  /** The command client, whose slot map says where `key` is on a Cluster. */
  via: RedisClient;
  /** Its name in CLIENT LIST. */
  name: string;
  /** The longest block: the command and socket timeouts are this much longer than `REDIS_COMMAND_TIMEOUT_MS`. */
  blockMs: number;
  logger: Pick<Console, 'warn'>;
}

/** A connection that is always `redis` (a test's, or one ioredis keeps connected). */
export function blockingOn(redis: Redis): BlockingConnection {
  return {
    acquire: async () => redis,
    failed: () => undefined,
    ready: () => (redis.status === 'ready' ? Promise.resolve() : new Promise((resolve) => redis.once('ready', () => resolve()))),
    close: async () => void (await redis.quit().catch(() => redis.disconnect())),
  };
}

export function connectBlocking(settings: RedisSettings, options: BlockingConnectionOptions): BlockingConnection {
  const { key, via, name: connectionName, blockMs, logger } = options;
  const cluster = settings.redisCluster;
  if (cluster === undefined) {
    const connection = connectRedis(settings, { name: connectionName, logger, blockMs });
    return { ...blockingOn(connection.client as Redis), close: connection.close };
  }
  const timeoutMs = settings.redisCommandTimeoutMs + blockMs;
  let current: Redis | undefined;
  let closed = false;
  return {
    async acquire() {
      if (current !== undefined) return current;
      if (closed) throw new Error('the blocking connection is closed');
      const { host, port } = connectionFor(via, key)?.options ?? {};
      if (host === undefined || port === undefined) throw new Error(`no master is known for ${key} yet`);
      const connection = new Redis({
        ...redisClientOptions(timeoutMs),
        enableAutoPipelining: false,
        // Not connected again: a master that went away may be a replica now.
        retryStrategy: () => null,
        host,
        port,
        connectionName,
        ...(cluster.password === undefined ? {} : { password: cluster.password }),
      });
      connection.on('error', () => undefined); // the command that fails says why
      current = connection;
      try {
        await new Promise<void>((resolve, reject) => {
          connection.once('ready', () => resolve());
          connection.once('end', () => reject(new Error(`could not connect to ${host}:${port} for ${key}`)));
        });
      } catch (error) {
        if (current === connection) current = undefined;
        throw error;
      }
      return connection;
    },
    failed(connection) {
      if (current !== connection) return;
      current = undefined;
      connection.disconnect();
    },
    ready: async () => undefined,
    async close() {
      closed = true;
      const connection = current;
      current = undefined;
      await connection?.quit().catch(() => connection.disconnect());
    },
  };
}
