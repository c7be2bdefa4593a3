/**
 * The production broker: Redis Pub/Sub over two ioredis connections given by the caller.
 *
 * Why not graphql-redis-subscriptions' `RedisPubSub`, the stack's first choice: its
 * `unsubscribe` does not await the UNSUBSCRIBE nor surface its failure, its `publish`
 * discards the receiver count that `receivedUsers` needs, it relies on ioredis'
 * `autoResubscribe` (which also resubscribes channels whose UNSUBSCRIBE failed while
 * the connection was down) and it has no way to report deliveries back to the
 * publisher. This module keeps its shape — one SUBSCRIBE per channel, the caller
 * owning the clients — and awaits and handles every command.
 *
 * Publishing is one Lua script, one call for the publishes of a turn of the event loop
 * (`redis-publish-batch.ts`): for each it draws the notification's id from the tenant's
 * counter, appends it to the audience's stream (trimmed by length and age), and
 * PUBLISHes it, so a subscriber can never see a live notification that history lacks;
 * on one node it also writes the notification's push entry when asked (`PublishRequest.push`),
 * so an acknowledged notification never lacks it and the entry costs no round trip.
 *
 * The parts, each in its module: channel subscriptions and resubscription
 * (`redis-channels.ts`), delivery counting (`redis-reports.ts`), the Lua scripts
 * (`redis-scripts.ts`), the publishes of a turn as one call (`redis-publish-batch.ts`),
 * history reads (`redis-history.ts`), the Pub/Sub frame
 * (`redis-frame.ts`). This module puts them together, publishes, and watches health.
 */
import { randomBytes } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { formatCursor, parseCursor } from '../common/cursor.js';
import type { Retention } from '../config/index.js';
import type { HotCounts } from '../common/metrics.js';
import { createRedisChannels } from './redis-channels.js';
import { createShardChannels, type ShardNode } from './redis-shard-channels.js';
import { outcomeOf } from '../redis/errors.js';
import { replaceRedisConnection, watchRedisLiveness } from '../redis/liveness.js';
import { UNCOUNTED_FRAME_HEAD } from './redis-frame.js';
import { createRedisHistory } from './redis-history.js';
import { createDeliveryReports } from './redis-reports.js';
import { createPublishBatch, type Published } from './redis-publish-batch.js';
import { defineScripts, type PublishCommand } from './redis-scripts.js';
import { type Broker, type PublishRequest } from './types.js';
import { BrokerUnavailableError, OutcomeUnknownError } from '../common/failures.js';

export interface RedisBrokerOptions {
  /**
   * Where notifications are heard. On one node (or behind Sentinel): the connection used
   * for SUBSCRIBE, which enters subscriber mode and is used for nothing else; create it
   * with {@link redisClientOptions}. On a Cluster: how to open a subscriber connection to
   * one master, for sharded Pub/Sub (SSUBSCRIBE on the master that serves a channel's
   * slot; see `redis-shard-channels.ts`).
   */
  subscriber: Redis | ((node: ShardNode) => Redis);
  /**
   * The client for everything else: the publish script, delivery reports, history reads.
   * A `Cluster` when `subscriber` opens shard connections, else a `Redis`.
   */
  publisher: Redis | Cluster;
  /** This process's report channel (`Namer.deliveryReportChannel`). */
  reportChannel: string;
  /**
   * How long `publish` waits for the subscribe servers that received a message to
   * report their deliveries (`HeraldConfig.deliveryAckTimeoutMs`). On timeout it
   * resolves with the reports that arrived.
   */
  reportTimeoutMs: number;
  /** How much history each stream keeps (`HeraldConfig.retention`). */
  retention: Retention;
  /** Where failures that have no caller to reject are reported. @default console */
  logger?: Pick<Console, 'warn' | 'error'>;
  /**
   * How often every connection (subscriber, publisher, each Cluster node and shard
   * subscriber) is PINGed. A PING not answered within `pingTimeoutMs` makes the broker
   * not ready (`/readyz` 503) and replaces its connection (`redis/liveness.ts`): a Redis
   * that went silent, not just away, is noticed and left.
   * @default 1000 (ms)
   */
  healthCheckIntervalMs?: number;
  /**
   * How long a PING may go unanswered before its connection is replaced
   * (`REDIS_COMMAND_TIMEOUT_MS`).
   * @default 2000 (ms)
   */
  pingTimeoutMs?: number;
  /**
   * Where the broker counts Redis reconnects and failed commands (the process's metrics,
   * read at scrape time). @default counts nobody reads
   */
  counts?: Pick<HotCounts, 'redisReconnects' | 'redisCommandErrors'>;
  /** Told how long each counted publish waited for its delivery reports, in seconds. @default nothing */
  onReportWait?: (seconds: number) => void;
  /**
   * How many replicas must acknowledge a publish (`REDIS_MIN_REPLICAS_ACKED`): after the
   * publish script the publisher sends `WAIT <n> <waitTimeoutMs>`, and a publish that
   * fewer replicas acknowledged fails with {@link OutcomeUnknownError} — it is stored on
   * the master and was delivered live, but may not survive a failover.
   * @default 0 (no WAIT)
   */
  minReplicasAcked?: number;
  /**
   * How long `WAIT` waits for the replicas; keep it below the connection's command
   * timeout, so that Redis' answer arrives before the command times out.
   * @default 1000 (ms)
   */
  waitTimeoutMs?: number;
}

const DEFAULT_PING_TIMEOUT_MS = 2000;
/** How many command timeouts one placement of a Cluster's sharded channels may take before it is tried again. */
const PLACEMENT_COMMAND_TIMEOUTS = 5;

export function createRedisBroker(options: RedisBrokerOptions): Broker {
  const { subscriber, publisher, reportChannel, retention } = options;
  const logger = options.logger ?? console;
  const sharded = typeof subscriber === 'function';
  if (sharded !== isCluster(publisher)) throw new Error('a Cluster publisher needs a shard subscriber factory, and only it');
  /** Classic Pub/Sub on one node; sharded Pub/Sub on a Cluster, so a message stays inside its slot's shard. */
  const publishCommand: PublishCommand = sharded ? 'SPUBLISH' : 'PUBLISH';
  defineScripts(publisher);
  const reports = createDeliveryReports({
    publish: sharded ? (channel, message) => publisher.spublish(channel, message) : (channel, message) => publisher.publish(channel, message),
    reportChannel,
    timeoutMs: options.reportTimeoutMs,
    logger,
  });
  const channelOptions = { reportChannel, onReport: reports.onReport, onDelivered: reports.reply, logger };
  const channels = sharded
    ? createShardChannels({
        ...channelOptions,
        cluster: publisher as Cluster,
        connect: subscriber,
        // A slot-map refresh, a connection and an SSUBSCRIBE, each bounded by the command timeout.
        attemptTimeoutMs: PLACEMENT_COMMAND_TIMEOUTS * (options.pingTimeoutMs ?? DEFAULT_PING_TIMEOUT_MS),
      })
    : createRedisChannels({ ...channelOptions, subscriber });
  // A tenant's epoch candidate must differ from any epoch it had before (a Redis that
  // restarted empty draws a new one): this process's random prefix and a counter make
  // each one new without drawing random bytes per publish.
  const epochPrefix = randomBytes(6).toString('hex');
  let epochCandidates = 0;
  let closed = false;

  const liveness = watchRedisLiveness({
    connections: () => (sharded ? [...(publisher as Cluster).nodes(), ...channels.connections()] : [subscriber as Redis, publisher as Redis]),
    intervalMs: options.healthCheckIntervalMs ?? 1000,
    timeoutMs: options.pingTimeoutMs ?? DEFAULT_PING_TIMEOUT_MS,
    logger,
    onReplaced: () => (counts.redisCommandErrors += 1),
  });
  const onError = (error: Error): void => {
    logger.warn(`herald: redis connection error: ${error.message}`);
  };
  const clients = typeof subscriber === 'function' ? [publisher] : [subscriber, publisher];
  for (const client of clients) client.on('error', onError);
  const counts = options.counts ?? { redisReconnects: 0, redisCommandErrors: 0 };
  // A connection's first `ready` is its start; each later one is a reconnect.
  for (const client of clients) {
    let wasReady = client.status === 'ready';
    client.on('ready', () => {
      if (wasReady) counts.redisReconnects += 1;
      wasReady = true;
    });
  }
  /** Counts a Redis command that failed (not sent, timed out, refused), and rethrows. */
  const countFailure = (error: unknown): never => {
    counts.redisCommandErrors += 1;
    throw error;
  };
  const history = createRedisHistory(publisher, retention);

  const publishInBatch = createPublishBatch({
    publisher,
    sharded,
    publishCommand,
    retention,
    minReplicasAcked: options.minReplicasAcked ?? 0,
    waitTimeoutMs: options.waitTimeoutMs ?? 1000,
    candidate: () => `${epochPrefix}${(++epochCandidates).toString(36)}`,
    outOfStep: (connection) => replaceRedisConnection(connection, 'a publish got the reply meant for another command', logger),
  });

  /**
   * Runs the publish script (with the other publishes of this turn: `redis-publish-batch.ts`);
   * `frameHead` is `<report channel>\n<sequence>`. With `minReplicasAcked`, a `WAIT`
   * follows the call on the same connection — on a Cluster in one pipeline with it, so
   * that it reaches the master that ran the script — and `replicas` resolves with the
   * failure when fewer replicas acknowledged it (none without the option). `WAIT` counts
   * the connection's writes; the script writes on a repeated idempotency key too, so a
   * retry waits for the first publish's replication.
   */
  const runPublishScript = async (
    { destination, tenantKey, payload, idempotency, ledger, push }: PublishRequest,
    frameHead: string,
  ): Promise<Published> => {
    if (publisher.status !== 'ready') {
      counts.redisCommandErrors += 1;
      throw new BrokerUnavailableError('Redis is unavailable: not connected (nothing was sent)');
    }
    // A Cluster's push stream shards are not in the tenant's slot: the caller queues it after.
    const scripted = sharded ? undefined : push;
    try {
      return await publishInBatch({
        tenantKey,
        stream: destination.stream,
        idempotencyKey: idempotency?.key ?? tenantKey,
        pushStream: scripted?.stream ?? tenantKey,
        channel: destination.channel,
        frameHead,
        payload,
        windowMs: idempotency ? idempotency.windowMs : '',
        ledgerPrefix: ledger?.keyPrefix ?? '',
        acceptedEvent: ledger ? JSON.stringify(ledger.event) : '',
        pushWhen: scripted?.when ?? '',
        pushHead: scripted?.head ?? '',
        pushTail: scripted?.tail ?? '',
        pushMaxLength: scripted?.maxLength ?? '',
      });
    } catch (error) {
      counts.redisCommandErrors += 1;
      throw outcomeOf('PUBLISH', error);
    }
  };

  return {
    listen(handler, events) {
      channels.listen(
        handler,
        events && {
          interrupted: events.interrupted,
          // Observers fill the gap from history, read on the publisher connection. Each
          // connection finds the (new) master by itself — behind Sentinel, seconds apart —
          // and a read before the publisher is back would fail the subscriptions it was
          // meant to save. A fill still waiting when the channels drop again is left to
          // the next resubscription.
          resubscribed: (resubscribed) => {
            const tell = (): void => {
              if (!closed && channels.heard) events.resubscribed(resubscribed);
            };
            if (publisher.status === 'ready') tell();
            else publisher.once('ready', tell);
          },
        },
      );
    },
    subscribe: (channel) => channels.subscribe(channel).catch(countFailure),
    unsubscribe: channels.unsubscribe,
    async publish(request) {
      if (closed) throw new BrokerUnavailableError('the broker is closed');
      const { idempotency } = request;
      if (request.countDeliveries === false && idempotency === undefined) {
        // The frame names no report channel: no subscribe server reports, nobody waits.
        const { id, pushQueued, replicas } = await runPublishScript(request, UNCOUNTED_FRAME_HEAD);
        const replicaFailure = replicas && (await replicas);
        if (replicaFailure) throw replicaFailure;
        return { id, receivedUsers: undefined, duplicate: false, pushQueued: pushQueued || undefined };
      }
      if (!channels.heard) throw new BrokerUnavailableError('Redis is unavailable: not connected (nothing was sent)');
      const count = reports.count();
      try {
        const { id, receivers, pushQueued, replicas } = await runPublishScript(request, count.head);
        if (receivers < 0) {
          const replicaFailure = replicas && (await replicas);
          if (replicaFailure) throw replicaFailure;
          const [firstId = id, remembered = '0'] = id.split(' ');
          return { id: firstId, receivedUsers: Number(remembered), duplicate: true };
        }
        const waitStarted = performance.now();
        const delivered = await count.delivered(receivers);
        options.onReportWait?.((performance.now() - waitStarted) / 1000);
        if (idempotency) {
          // A repeat of the key reports what the first publish reached — remembered even
          // when the replicas did not acknowledge, for the publisher's retry.
          await publisher.set(idempotency.key, `${id} ${delivered}`, 'KEEPTTL', 'XX').catch((error: unknown) => {
            counts.redisCommandErrors += 1;
            logger.warn(`herald: could not remember deliveries of ${id}: ${String(error)}`);
          });
        }
        const replicaFailure = replicas && (await replicas);
        if (replicaFailure) throw replicaFailure;
        return { id, receivedUsers: delivered, duplicate: false, pushQueued: pushQueued || undefined };
      } finally {
        count.close();
      }
    },
    async markRead({ key, tenantKey, channel, upTo, payload }) {
      if (closed) throw new BrokerUnavailableError('the broker is closed');
      if (publisher.status !== 'ready') throw new BrokerUnavailableError('Redis is unavailable: not connected (nothing was changed)');
      try {
        const [kept, moved] = await publisher.heraldMarkRead(key, tenantKey, channel, UNCOUNTED_FRAME_HEAD, formatCursor(upTo), payload, publishCommand);
        if (moved === -1) return { unknownEpoch: upTo.epoch };
        return { readUpTo: parseCursor(kept) ?? upTo, advanced: moved === 1 };
      } catch (error) {
        throw outcomeOf('PUBLISH', error);
      }
    },
    async signal(channel, id, payload) {
      if (closed) throw new BrokerUnavailableError('the broker is closed');
      try {
        await publisher.call(publishCommand, channel, `${UNCOUNTED_FRAME_HEAD}\n${id}\n${payload}`);
      } catch (error) {
        throw outcomeOf('PUBLISH', error);
      }
    },
    async readPosition(key) {
      if (closed) throw new BrokerUnavailableError('the broker is closed');
      try {
        return parseCursor(await publisher.get(key));
      } catch (error) {
        throw outcomeOf('GET', error);
      }
    },
    readAfter: (request) => history.readAfter(request).catch(countFailure),
    readPage: (request) => history.readPage(request).catch(countFailure),
    isReady: () => !closed && liveness.answering && channels.heard && publisher.status === 'ready',
    async close() {
      closed = true;
      liveness.close();
      reports.settleAll();
      await channels.close();
    },
  };
}

function isCluster(client: Redis | Cluster): client is Cluster {
  return (client as Partial<Cluster>).isCluster === true;
}
