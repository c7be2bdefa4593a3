/**
 * ioredis options for Redis behind Sentinel and for Redis Cluster, made from
 * the settings `readConfig` validated. Each connection keeps the rules of
 * {@link redisClientOptions}: commands fail at once while it is down, nothing is resent
 * or resubscribed behind the broker's back, an unanswered command times out.
 */
import type { ClusterOptions, Redis, RedisOptions } from 'ioredis';
import type { RedisClusterSettings, RedisSentinelSettings } from '../config/index.js';

/**
 * ioredis options every Herald connection needs: commands fail at once while the
 * connection is down instead of queueing (so no request hangs), nothing is resent or
 * resubscribed behind the broker's back, and a command without an answer times out.
 */
export function redisClientOptions(commandTimeoutMs: number) {
  return {
    enableOfflineQueue: false,
    autoResubscribe: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    commandTimeout: commandTimeoutMs,
    // A command sent and nothing at all received for this long: ioredis destroys the
    // socket and connects again (liveness.ts covers idle connections and a stream
    // out of step). Raise it with commandTimeout for a connection that blocks.
    socketTimeout: commandTimeoutMs,
    lazyConnect: false,
    // Commands issued in one tick (a batch's publishes, resumes' history reads) go out in one write.
    enableAutoPipelining: true,
    // Delivery reports are already one PUBLISH per publisher per turn (redis-reports.ts):
    // an auto-pipeline around each would cost a pipeline object per turn and join nothing.
    // On a Cluster, ioredis places an auto-pipeline by its commands' keys, and finds none
    // in XGROUP and XINFO (subcommand first) nor in XREADGROUP (keys after STREAMS): in a
    // pipeline with other commands they reach the wrong master, and its MOVED is not retried.
    // The publish script already carries every publish of a turn (redis-publish-batch.ts),
    // sent once the turn's I/O is done: an auto-pipeline would hold it for another turn.
    // A subscription's reads as it opens (its preferences script, its topics' SMEMBERS)
    // go out alone: an auto-pipeline each (a pipeline object of its own, alive until
    // Redis answers) put several KB per connection into V8's old generation when
    // thousands open at once.
    autoPipeliningIgnoredCommands: ['publish', 'spublish', 'xgroup', 'xinfo', 'xreadgroup', 'heraldPublish', 'heraldReadPreferences', 'smembers'] as string[],
  } as const;
}

/**
 * Options for a `Redis` that asks the sentinels for the current master and follows a
 * failover: on `+switch-master` (so also when the old master is still up, demoted), on
 * a lost connection, and on a READONLY reply (it reached a node that is now a replica).
 * After a failover the client reconnects to the master the sentinels name; commands
 * sent meanwhile fail (no offline queue).
 */
export function sentinelClientOptions(settings: RedisSentinelSettings, commandTimeoutMs: number): RedisOptions {
  return {
    ...redisClientOptions(commandTimeoutMs),
    sentinels: settings.sentinels.map(({ host, port }) => ({ host, port })),
    name: settings.masterName,
    role: 'master',
    // A sentinel that accepts the connection but never answers must not stall the lookup.
    sentinelCommandTimeout: commandTimeoutMs,
    // Without it a client stays on a demoted master that is still reachable (a partition
    // healed, a manual SENTINEL FAILOVER) until a write fails.
    failoverDetector: true,
    // Reconnect (true) without resending (2 would resend): the write failed, and whether
    // to retry it is the caller's decision.
    reconnectOnError: (error: Error) => error.message.startsWith('READONLY'),
    ...(settings.password === undefined ? {} : { password: settings.password }),
    ...(settings.sentinelPassword === undefined ? {} : { sentinelPassword: settings.sentinelPassword }),
  };
}

/**
 * Connects a Sentinel-backed `client` again whenever ioredis gives up on it (status
 * `end`) while `wanted()` holds. ioredis 5 does give up: the failover detector of a
 * connection that was lost (not closed by ioredis) stays subscribed to the sentinels, and
 * on `+switch-master` it closes the reconnection then under way, which is not retried.
 */
export function keepSentinelClientConnected(client: Redis, wanted: () => boolean, logger: Pick<Console, 'warn'>): void {
  client.on('end', () => {
    if (!wanted()) return;
    logger.warn('herald: ioredis stopped reconnecting to the Sentinel master; connecting again');
    client.connect().catch((error: unknown) => logger.warn(`herald: reconnecting through Sentinel failed: ${String(error)}`));
  });
}

/** A `Cluster`'s constructor arguments: the seed nodes and its options. */
export interface ClusterConnection {
  readonly startupNodes: Array<{ host: string; port: number }>;
  readonly options: ClusterOptions;
}

/**
 * How often the command client reads the slot map again (CLUSTER SLOTS) without being
 * told to: a slot that moved is noticed this late at worst, and the sharded channels
 * heard on its old master are placed again (`redis-shard-channels.ts`).
 */
const SLOTS_REFRESH_INTERVAL_MS = 2000;

/**
 * Arguments for the command client, `new Cluster(startupNodes, options)`. MOVED, ASK,
 * TRYAGAIN and CLUSTERDOWN replies are retried by ioredis (Redis ran nothing); a command
 * whose connection closed before its reply is not (`retryDelayOnFailover: 0`): Redis may
 * have run it, and resending the publish script would publish twice. The Cluster's own
 * sharded subscribers stay off: the broker keeps its own, which say when channels were
 * unheard.
 */
export function clusterClientOptions(settings: RedisClusterSettings, commandTimeoutMs: number): ClusterConnection {
  // The Cluster takes the offline queue at its own level, not per node.
  const { enableOfflineQueue, enableAutoPipelining, autoPipeliningIgnoredCommands, ...perNode } = redisClientOptions(commandTimeoutMs);
  return {
    startupNodes: settings.nodes.map(({ host, port }) => ({ host, port })),
    options: {
      enableOfflineQueue,
      enableAutoPipelining,
      autoPipeliningIgnoredCommands,
      retryDelayOnFailover: 0,
      shardedSubscribers: false,
      slotsRefreshInterval: SLOTS_REFRESH_INTERVAL_MS,
      // A slot-map refresh (CLUSTER SLOTS) unanswered this long fails and is tried on another node.
      slotsRefreshTimeout: commandTimeoutMs,
      redisOptions: {
        ...perNode,
        ...(settings.password === undefined ? {} : { password: settings.password }),
      },
    },
  };
}

/**
 * Options for one sharded subscriber connection to a master (SSUBSCRIBE only): Herald's
 * client rules, and no reconnection — a lost one is replaced by a connection to
 * whichever master serves its channels' slots by then.
 */
export function shardSubscriberOptions(settings: RedisClusterSettings, commandTimeoutMs: number): RedisOptions {
  return {
    ...redisClientOptions(commandTimeoutMs),
    enableAutoPipelining: false,
    retryStrategy: () => null,
    ...(settings.password === undefined ? {} : { password: settings.password }),
  };
}
