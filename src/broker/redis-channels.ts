/**
 * The Redis broker's channel subscriptions, on its subscriber connection: one SUBSCRIBE
 * per channel, every one awaited; the report channel beside them; and everything
 * subscribed again on each (re)connection, with the observers told — `interrupted` when
 * the connection drops, `resubscribed` once the channels are heard again — so that they
 * fill from history what was published in between.
 *
 * Each notification frame heard on a subscribed channel goes to the broker's handler,
 * and how many subscriptions it reached to `onDelivered` (which reports it back to the
 * publisher); report-channel messages go to `onReport`.
 */
import type { Redis } from 'ioredis';
import { outcomeOf } from '../redis/errors.js';
import { replaceRedisConnection } from '../redis/liveness.js';
import { parseFrame, type Frame } from './redis-frame.js';
import { type ChannelEvents, type MessageHandler } from './types.js';
import { BrokerUnavailableError, OutcomeUnknownError } from '../common/failures.js';

export interface RedisChannelsOptions {
  /** The connection used for SUBSCRIBE; it enters subscriber mode and is used for nothing else. */
  subscriber: Redis;
  /** This process's report channel, subscribed whenever the connection is. */
  reportChannel: string;
  /** Told each message on the report channel. */
  onReport(message: string): void;
  /** Told how many subscriptions a frame reached (0 when none, or when it could not be read). */
  onDelivered(frame: Frame, delivered: number): void;
  logger: Pick<Console, 'warn' | 'error'>;
}

/**
 * What to do with one message heard on a channel: a report goes to `onReport`; a
 * notification frame to the handler `handlerOf` gives for its channel (none when the
 * channel is no longer wanted), and how many subscriptions it reached to `onDelivered`.
 */
export function createMessageReceiver(
  options: Pick<RedisChannelsOptions, 'reportChannel' | 'onReport' | 'onDelivered' | 'logger'>,
  handlerOf: (channel: string) => MessageHandler | undefined,
): (channel: string, message: string) => void {
  const { reportChannel, logger } = options;
  return (channel, message) => {
    if (channel === reportChannel) return options.onReport(message);
    const frame = parseFrame(message);
    if (!frame) {
      logger.warn(`herald: ignored a malformed message on ${channel}`);
      return;
    }
    let delivered = 0;
    try {
      const handler = handlerOf(channel);
      if (handler) delivered = handler(channel, { id: frame.id, payload: frame.payload });
    } catch (error) {
      // Thrown here, it would escape into ioredis' reply parser and take the process down.
      logger.error(`herald: delivering a message on ${channel} failed: ${String(error)}`);
    }
    options.onDelivered(frame, delivered);
  };
}

export interface RedisChannels {
  /** Sets the one handler of notifications, and who is told of interruptions; a second call throws. */
  listen(handler: MessageHandler, events?: ChannelEvents): void;
  subscribe(channel: string): Promise<void>;
  unsubscribe(channel: string): Promise<void>;
  /** Whether the report channel (with every channel) is subscribed on the live connection. */
  readonly heard: boolean;
  /** The subscriber connections in use now, for the liveness checks. */
  connections(): Iterable<Redis>;
  /** Unsubscribes everything and stops listening; the connection is the caller's. */
  close(): Promise<void>;
}

export function createRedisChannels(options: RedisChannelsOptions): RedisChannels {
  const { subscriber, reportChannel, logger } = options;
  /** The channels subscribed, or being subscribed, for the handler. */
  const subscribed = new Set<string>();
  let handler: MessageHandler | undefined;
  let events: ChannelEvents | undefined;
  let heard = false;
  /** Whether the subscribed channels were heard on the current connection (so a drop interrupts them). */
  let channelsHeard = false;
  let closed = false;

  const onMessage = createMessageReceiver(options, (channel) => (subscribed.has(channel) ? handler : undefined));

  // Subscribes everything again on every (re)connection: after Redis comes back, every
  // open channel is heard again without any observer doing anything, and its observers
  // are told, so that they fill from history what was published while it was not heard.
  const onReady = (): void => {
    const resubscribed = [...subscribed];
    subscriber.subscribe(reportChannel, ...resubscribed).then(
      () => {
        heard = true;
        channelsHeard = true;
        // A channel released meanwhile has no observers left to tell.
        const still = resubscribed.filter((channel) => subscribed.has(channel));
        if (still.length > 0) events?.resubscribed(still);
      },
      (error: unknown) => {
        // Never leave channels unheard on a live connection: start over on a new one.
        logger.error(`herald: could not resubscribe ${resubscribed.length + 1} channels (${String(error)}); reconnecting`);
        if (!closed) replaceRedisConnection(subscriber, 'its channels could not be subscribed again', logger);
      },
    );
  };
  const onClose = (): void => {
    heard = false;
    if (!channelsHeard) return;
    channelsHeard = false;
    if (subscribed.size > 0) events?.interrupted([...subscribed]);
  };

  subscriber.on('message', onMessage);
  subscriber.on('ready', onReady);
  subscriber.on('close', onClose);
  if (subscriber.status === 'ready') onReady();

  return {
    listen(next, channelEvents) {
      if (handler) throw new Error('the broker already has a message handler');
      handler = next;
      events = channelEvents;
    },
    async subscribe(channel) {
      if (closed) throw new BrokerUnavailableError('the broker is closed');
      subscribed.add(channel);
      try {
        await subscriber.subscribe(channel);
      } catch (error) {
        subscribed.delete(channel);
        const failure = outcomeOf('SUBSCRIBE', error);
        if (failure instanceof OutcomeUnknownError && subscriber.status === 'ready') {
          // Redis may yet carry it out: undo it behind it on the same connection, so no
          // channel stays subscribed that no observer holds (and that every publish counts).
          await subscriber.unsubscribe(channel).catch((undo: unknown) => {
            logger.warn(`herald: UNSUBSCRIBE ${channel} after a failed SUBSCRIBE failed: ${String(undo)}`);
          });
        }
        throw new BrokerUnavailableError(failure.message);
      }
    },
    async unsubscribe(channel) {
      subscribed.delete(channel);
      if (subscriber.status !== 'ready') return; // the next connection will not resubscribe it
      try {
        await subscriber.unsubscribe(channel);
      } catch (error) {
        logger.warn(`herald: UNSUBSCRIBE ${channel} failed: ${String(error)}`);
      }
    },
    get heard() {
      return heard && subscriber.status === 'ready';
    },
    connections: () => [subscriber],
    async close() {
      closed = true;
      subscriber.off('message', onMessage);
      subscriber.off('ready', onReady);
      subscriber.off('close', onClose);
      const all = [reportChannel, ...subscribed];
      subscribed.clear();
      heard = false;
      if (subscriber.status === 'ready') {
        await subscriber.unsubscribe(...all).catch((error: unknown) => {
          logger.warn(`herald: UNSUBSCRIBE on close failed: ${String(error)}`);
        });
      }
    },
  };
}
