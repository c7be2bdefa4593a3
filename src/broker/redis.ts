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
 * Counting deliveries: each PUBLISH carries the publisher's report channel and a
 * sequence number. PUBLISH returns how many subscribe-server connections got the
 * message; each of them publishes back how many live subscriptions it reached, and
 * `publish` resolves with the sum once every one has reported (or the report timeout
 * passes, counting what arrived).
 */
import type { Redis } from 'ioredis';
import { BrokerUnavailableError, type Broker, type MessageSink } from './types.js';

export interface RedisBrokerOptions {
  /**
   * The connection used for SUBSCRIBE; it enters subscriber mode and is used for
   * nothing else. Create it with {@link redisClientOptions}.
   */
  subscriber: Redis;
  /** The connection used for PUBLISH (notifications and delivery reports). */
  publisher: Redis;
  /** This process's report channel (`ChannelNamer.deliveryReportChannel`). */
  reportChannel: string;
  /**
   * How long `publish` waits for the subscribe servers that received a message to
   * report their deliveries. On timeout it resolves with the reports that arrived.
   * @default 1000 (ms)
   */
  reportTimeoutMs?: number;
  /** Where failures that have no caller to reject are reported. @default console */
  logger?: Pick<Console, 'warn' | 'error'>;
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
  } as const;
}

interface PendingPublish {
  expected: number | undefined;
  reported: number;
  delivered: number;
  settle: (() => void) | undefined;
}

/** Frame: `<report channel>\n<sequence>\n<payload>`; channel names hold no newline. */
const SEPARATOR = '\n';

export function createRedisBroker(options: RedisBrokerOptions): Broker {
  const { subscriber, publisher, reportChannel } = options;
  const reportTimeoutMs = options.reportTimeoutMs ?? 1000;
  const logger = options.logger ?? console;
  const channels = new Set<string>();
  const pending = new Map<string, PendingPublish>();
  let sink: MessageSink | undefined;
  let sequence = 0;
  let reportsSubscribed = false;
  let closed = false;

  const onMessage = (channel: string, message: string): void => {
    if (channel === reportChannel) return onReport(message);
    const first = message.indexOf(SEPARATOR);
    const second = message.indexOf(SEPARATOR, first + 1);
    if (first < 0 || second < 0) {
      logger.warn(`herald: ignored a malformed message on ${channel}`);
      return;
    }
    const delivered = sink && channels.has(channel) ? sink(channel, message.slice(second + 1)) : 0;
    const replyTo = message.slice(0, first);
    const id = message.slice(first + 1, second);
    publisher.publish(replyTo, `${id} ${delivered}`).catch((error: unknown) => {
      logger.warn(`herald: could not report ${delivered} deliveries on ${channel}: ${String(error)}`);
    });
  };

  const onReport = (message: string): void => {
    const [id = '', count = ''] = message.split(' ');
    const publish = pending.get(id);
    const delivered = Number(count);
    if (!publish || !Number.isSafeInteger(delivered) || delivered < 0) return;
    publish.reported += 1;
    publish.delivered += delivered;
    if (publish.expected !== undefined && publish.reported >= publish.expected) publish.settle?.();
  };

  // Subscribes everything again on every (re)connection: after Redis comes back, every
  // open channel is heard again without any observer doing anything.
  const onReady = (): void => {
    const all = [reportChannel, ...channels];
    subscriber.subscribe(...all).then(
      () => {
        reportsSubscribed = true;
      },
      (error: unknown) => logger.error(`herald: could not resubscribe ${all.length} channels: ${String(error)}`),
    );
  };
  const onClose = (): void => {
    reportsSubscribed = false;
  };
  const onError = (error: Error): void => {
    logger.warn(`herald: redis connection error: ${error.message}`);
  };

  subscriber.on('message', onMessage);
  subscriber.on('ready', onReady);
  subscriber.on('close', onClose);
  subscriber.on('error', onError);
  publisher.on('error', onError);
  if (subscriber.status === 'ready') onReady();

  return {
    kind: 'redis',
    listen(next) {
      if (sink) throw new Error('the broker already has a sink');
      sink = next;
    },
    async subscribe(channel) {
      channels.add(channel);
      try {
        await subscriber.subscribe(channel);
      } catch (error) {
        channels.delete(channel);
        throw unavailable('SUBSCRIBE', error);
      }
    },
    async unsubscribe(channel) {
      channels.delete(channel);
      if (subscriber.status !== 'ready') return; // the next connection will not resubscribe it
      try {
        await subscriber.unsubscribe(channel);
      } catch (error) {
        logger.warn(`herald: UNSUBSCRIBE ${channel} failed: ${String(error)}`);
      }
    },
    async publish(channel, payload) {
      if (!reportsSubscribed) throw new BrokerUnavailableError('Redis is unavailable: not connected');
      const id = String(++sequence);
      const entry: PendingPublish = { expected: undefined, reported: 0, delivered: 0, settle: undefined };
      pending.set(id, entry);
      let timer: NodeJS.Timeout | undefined;
      try {
        let receivers: number;
        try {
          receivers = await publisher.publish(channel, `${reportChannel}${SEPARATOR}${id}${SEPARATOR}${payload}`);
        } catch (error) {
          throw unavailable('PUBLISH', error);
        }
        entry.expected = receivers;
        if (entry.reported < receivers) {
          await new Promise<void>((resolve) => {
            entry.settle = resolve;
            timer = setTimeout(() => {
              logger.warn(
                `herald: ${receivers - entry.reported} of ${receivers} subscribe servers did not report deliveries within ${reportTimeoutMs} ms`,
              );
              resolve();
            }, reportTimeoutMs);
          });
        }
        return entry.delivered;
      } finally {
        clearTimeout(timer);
        pending.delete(id);
      }
    },
    isReady: () => !closed && reportsSubscribed && subscriber.status === 'ready' && publisher.status === 'ready',
    async close() {
      closed = true;
      subscriber.off('message', onMessage);
      subscriber.off('ready', onReady);
      subscriber.off('close', onClose);
      for (const entry of pending.values()) entry.settle?.();
      const all = [reportChannel, ...channels];
      channels.clear();
      reportsSubscribed = false;
      if (subscriber.status === 'ready') {
        await subscriber.unsubscribe(...all).catch((error: unknown) => {
          logger.warn(`herald: UNSUBSCRIBE on close failed: ${String(error)}`);
        });
      }
      subscriber.off('error', onError);
      publisher.off('error', onError);
    },
  };
}

function unavailable(command: string, error: unknown): BrokerUnavailableError {
  const reason = error instanceof Error ? error.message : String(error);
  return new BrokerUnavailableError(`Redis is unavailable (${command} failed: ${reason})`);
}
