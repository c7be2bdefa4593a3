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
 * Publishing is one Lua script: it draws the notification's id from the tenant's
 * counter, appends it to the audience's stream (trimmed by length and age), and
 * PUBLISHes it, so a subscriber can never see a live notification that history lacks.
 *
 * The parts, each in its module: channel subscriptions and resubscription
 * (`redis-channels.ts`), delivery counting (`redis-reports.ts`), the Lua scripts
 * (`redis-scripts.ts`), history reads (`redis-history.ts`), the Pub/Sub frame
 * (`redis-frame.ts`). This module puts them together, publishes, and watches health.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { formatCursor, parseCursor } from '../common/cursor.js';
import type { Retention } from '../config/index.js';
import { createRedisChannels } from './redis-channels.js';
import { outcomeOf } from './redis-errors.js';
import { UNCOUNTED_FRAME_HEAD } from './redis-frame.js';
import { createRedisHistory } from './redis-history.js';
import { createDeliveryReports } from './redis-reports.js';
import { defineScripts } from './redis-scripts.js';
import { BrokerUnavailableError, type Broker, type PublishRequest } from './types.js';

export interface RedisBrokerOptions {
  /**
   * The connection used for SUBSCRIBE; it enters subscriber mode and is used for
   * nothing else. Create it with {@link redisClientOptions}.
   */
  subscriber: Redis;
  /** The connection used for PUBLISH (notifications and delivery reports) and history reads. */
  publisher: Redis;
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
   * How often the publisher connection is PINGed. A ping that fails or is not answered
   * within the command timeout makes the broker not ready (`/readyz` 503) until one is
   * answered: a Redis that is frozen, not just gone, is noticed.
   * @default 1000 (ms)
   */
  healthCheckIntervalMs?: number;
}

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
    lazyConnect: false,
    // Commands issued in one tick (delivery reports, a batch's publishes) go out in one write.
    enableAutoPipelining: true,
  } as const;
}

export function createRedisBroker(options: RedisBrokerOptions): Broker {
  const { subscriber, publisher, reportChannel, retention } = options;
  const logger = options.logger ?? console;
  defineScripts(publisher);
  const reports = createDeliveryReports({ publisher, reportChannel, timeoutMs: options.reportTimeoutMs, logger });
  const channels = createRedisChannels({
    subscriber,
    reportChannel,
    onReport: reports.onReport,
    onDelivered: reports.reply,
    logger,
  });
  // A tenant's epoch candidate must differ from any epoch it had before (a Redis that
  // restarted empty draws a new one): this process's random prefix and a counter make
  // each one new without drawing random bytes per publish.
  const epochPrefix = randomBytes(6).toString('hex');
  let epochCandidates = 0;
  let healthy = true;
  let closed = false;

  const healthCheck = setInterval(() => {
    if (publisher.status !== 'ready') return;
    publisher.ping().then(
      () => {
        healthy = true;
      },
      (error: unknown) => {
        if (healthy) logger.warn(`herald: Redis did not answer a PING: ${String(error)}`);
        healthy = false;
      },
    );
  }, options.healthCheckIntervalMs ?? 1000);
  healthCheck.unref();
  const onError = (error: Error): void => {
    logger.warn(`herald: redis connection error: ${error.message}`);
  };
  subscriber.on('error', onError);
  publisher.on('error', onError);

  /** Runs the publish script; `frameHead` is `<report channel>\n<sequence>`. Resolves with [id, receivers]. */
  const runPublishScript = async ({ destination, tenantKey, payload, idempotency }: PublishRequest, frameHead: string): Promise<[string, number]> => {
    if (publisher.status !== 'ready') throw new BrokerUnavailableError('Redis is unavailable: not connected (nothing was sent)');
    try {
      return await publisher.heraldPublish(
        tenantKey,
        destination.stream,
        idempotency?.key ?? tenantKey,
        destination.channel,
        frameHead,
        payload,
        `${epochPrefix}${(++epochCandidates).toString(36)}`,
        retention.maxLength,
        retention.maxAgeMs,
        idempotency ? idempotency.windowMs : '',
      );
    } catch (error) {
      throw outcomeOf('PUBLISH', error);
    }
  };

  return {
    listen: channels.listen,
    subscribe: channels.subscribe,
    unsubscribe: channels.unsubscribe,
    async publish(request) {
      if (closed) throw new BrokerUnavailableError('the broker is closed');
      const { idempotency } = request;
      if (request.countDeliveries === false && idempotency === undefined) {
        // The frame names no report channel: no subscribe server reports, nobody waits.
        const [id] = await runPublishScript(request, UNCOUNTED_FRAME_HEAD);
        return { id, receivedUsers: undefined, duplicate: false };
      }
      if (!channels.heard) throw new BrokerUnavailableError('Redis is unavailable: not connected (nothing was sent)');
      const count = reports.count();
      try {
        const [id, receivers] = await runPublishScript(request, count.head);
        if (receivers < 0) {
          const [firstId = id, remembered = '0'] = id.split(' ');
          return { id: firstId, receivedUsers: Number(remembered), duplicate: true };
        }
        const delivered = await count.delivered(receivers);
        if (idempotency) {
          // A repeat of the key reports what the first publish reached.
          await publisher.set(idempotency.key, `${id} ${delivered}`, 'KEEPTTL', 'XX').catch((error: unknown) => {
            logger.warn(`herald: could not remember deliveries of ${id}: ${String(error)}`);
          });
        }
        return { id, receivedUsers: delivered, duplicate: false };
      } finally {
        count.close();
      }
    },
    async markRead({ key, channel, upTo, payload }) {
      if (closed) throw new BrokerUnavailableError('the broker is closed');
      if (publisher.status !== 'ready') throw new BrokerUnavailableError('Redis is unavailable: not connected (nothing was changed)');
      try {
        const [kept, moved] = await publisher.heraldMarkRead(key, channel, UNCOUNTED_FRAME_HEAD, formatCursor(upTo), payload);
        return { readUpTo: parseCursor(kept) ?? upTo, advanced: moved === 1 };
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
    ...createRedisHistory(publisher, retention),
    isReady: () => !closed && healthy && channels.heard && subscriber.status === 'ready' && publisher.status === 'ready',
    async close() {
      closed = true;
      clearInterval(healthCheck);
      reports.settleAll();
      await channels.close();
    },
  };
}
