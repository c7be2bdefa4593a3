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
 * Counting deliveries: each message carries the publisher's report channel and a
 * sequence number (or no channel, when the publisher did not ask for the count).
 * PUBLISH returns how many subscribe-server connections got the message; each of them
 * publishes back how many live subscriptions it reached, and `publish` resolves with the
 * sum once every one has reported (or the report timeout passes, counting what arrived).
 */
import { createHash, randomBytes } from 'node:crypto';
import { ReplyError, type Redis } from 'ioredis';
import { streamId } from '../common/cursor.js';
import type { Retention } from '../config/index.js';
import { findGap, mergeNewestFirst, mergePage, perStreamLimit, type StreamState } from './history.js';
import {
  BrokerUnavailableError,
  OutcomeUnknownError,
  type Broker,
  type BrokerMessage,
  type ChannelEvents,
  type MessageSink,
  type PublishRequest,
} from './types.js';

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

interface PendingPublish {
  expected: number | undefined;
  reported: number;
  delivered: number;
  settle: (() => void) | undefined;
}

/** Frame: `<report channel>\n<sequence>\n<id>\n<payload>`; channel names and ids hold no newline. */
const SEPARATOR = '\n';

/**
 * KEYS: tenant hash, stream, idempotency key (the tenant hash again when unused).
 * ARGV: channel, frame head (`<report channel>\n<sequence>`), payload, candidate epoch,
 * max length, max age (ms), idempotency window (ms, '' when unused).
 * Returns {id, receivers}, or {remembered value, -1} for a repeated idempotency key.
 */
const PUBLISH_SCRIPT = `
local windowMs = ARGV[7]
if windowMs ~= '' then
  local seen = redis.call('GET', KEYS[3])
  if seen then return {seen, -1} end
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('HSETNX', KEYS[1], 'epoch', ARGV[4])
local epoch = redis.call('HGET', KEYS[1], 'epoch')
local ms = math.max(now, tonumber(redis.call('HGET', KEYS[1], 'ms') or '0'))
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HSET', KEYS[1], 'ms', ms)
local entryId = string.format('%d-%d', ms, seq)
-- Trimmed with XDEL, not MAXLEN/MINID: only XDEL advances max-deleted-entry-id, which
-- is how a reader learns that entries after its cursor are gone.
local excess = redis.call('XLEN', KEYS[2]) + 1 - tonumber(ARGV[5])
if excess > 0 then
  local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', math.min(excess, 1000))
  for _, entry in ipairs(oldest) do redis.call('XDEL', KEYS[2], entry[1]) end
end
local expired = redis.call('XRANGE', KEYS[2], '-', string.format('(%d', math.max(0, now - tonumber(ARGV[6]))), 'COUNT', 1000)
for _, entry in ipairs(expired) do redis.call('XDEL', KEYS[2], entry[1]) end
redis.call('XADD', KEYS[2], entryId, 'n', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
local id = epoch .. '_' .. entryId
if windowMs ~= '' then redis.call('SET', KEYS[3], id, 'PX', windowMs) end
local receivers = redis.call('PUBLISH', ARGV[1], ARGV[2] .. '\\n' .. id .. '\\n' .. ARGV[3])
return {id, receivers}
`;

/**
 * KEYS: tenant hash, then the streams. ARGV: exclusive start entry id, most entries per
 * stream (so one call's time and reply are bounded, however old the start).
 * Returns {epoch or nil, {exists, max-deleted-entry-id, entries} per stream}.
 */
const READ_AFTER_SCRIPT = `
local result = { redis.call('HGET', KEYS[1], 'epoch') }
for i = 2, #KEYS do
  local maxDeleted = '0-0'
  local exists = redis.call('EXISTS', KEYS[i])
  if exists == 1 then
    local info = redis.call('XINFO', 'STREAM', KEYS[i])
    for j = 1, #info, 2 do
      if info[j] == 'max-deleted-entry-id' then maxDeleted = info[j + 1] end
    end
  end
  result[#result + 1] = { exists, maxDeleted, redis.call('XRANGE', KEYS[i], '(' .. ARGV[1], '+', 'COUNT', ARGV[2]) }
end
return result
`;

/** A Lua script run by EVALSHA, loaded with EVAL the first time a server lacks it. */
class Script {
  readonly #source: string;
  readonly #sha: string;
  constructor(source: string) {
    this.#source = source;
    this.#sha = createHash('sha1').update(source).digest('hex');
  }
  async run(client: Redis, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<unknown> {
    try {
      return await client.evalsha(this.#sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return client.eval(this.#source, keys.length, ...keys, ...args);
    }
  }
}

const publishScript = new Script(PUBLISH_SCRIPT);
/** The error ioredis gives a command it did not send: the connection was not writable. */
const NOT_SENT = "Stream isn't writeable";
const readAfterScript = new Script(READ_AFTER_SCRIPT);

type StreamEntries = Array<[string, string[]]>;

export function createRedisBroker(options: RedisBrokerOptions): Broker {
  const { subscriber, publisher, reportChannel } = options;
  const { reportTimeoutMs, retention } = options;
  const logger = options.logger ?? console;
  const channels = new Set<string>();
  const pending = new Map<string, PendingPublish>();
  let sink: MessageSink | undefined;
  let sequence = 0;
  // A tenant's epoch candidate must differ from any epoch it had before (a Redis that
  // restarted empty draws a new one): this process's random prefix and a counter make
  // each one new without drawing random bytes per publish.
  const epochPrefix = randomBytes(6).toString('hex');
  let epochCandidates = 0;
  let reportsSubscribed = false;
  /** Whether the subscribed channels were heard on the current connection (so a drop interrupts them). */
  let channelsHeard = false;
  let healthy = true;
  let closed = false;
  let events: ChannelEvents | undefined;

  const onMessage = (channel: string, message: string): void => {
    if (channel === reportChannel) return onReport(message);
    const first = message.indexOf(SEPARATOR);
    const second = message.indexOf(SEPARATOR, first + 1);
    const third = message.indexOf(SEPARATOR, second + 1);
    if (first < 0 || second < 0 || third < 0) {
      logger.warn(`herald: ignored a malformed message on ${channel}`);
      return;
    }
    let delivered = 0;
    try {
      if (sink && channels.has(channel)) delivered = sink(channel, { id: message.slice(second + 1, third), payload: message.slice(third + 1) });
    } catch (error) {
      // Thrown here, it would escape into ioredis' reply parser and take the process down.
      logger.error(`herald: delivering a message on ${channel} failed: ${String(error)}`);
    }
    const replyTo = message.slice(0, first);
    if (replyTo === '') return; // the publisher did not ask for a count
    const sequenceNumber = message.slice(first + 1, second);
    publisher.publish(replyTo, `${sequenceNumber} ${delivered}`).catch((error: unknown) => {
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
  // open channel is heard again without any observer doing anything, and its observers
  // are told, so that they fill from history what was published while it was not heard.
  const onReady = (): void => {
    const resubscribed = [...channels];
    subscriber.subscribe(reportChannel, ...resubscribed).then(
      () => {
        reportsSubscribed = true;
        channelsHeard = true;
        // A channel released meanwhile has no observers left to tell.
        const still = resubscribed.filter((channel) => channels.has(channel));
        if (still.length > 0) events?.resubscribed(still);
      },
      (error: unknown) => {
        // Never leave channels unheard on a live connection: start over on a new one.
        logger.error(`herald: could not resubscribe ${resubscribed.length + 1} channels (${String(error)}); reconnecting`);
        if (!closed) subscriber.disconnect(true);
      },
    );
  };
  const onClose = (): void => {
    reportsSubscribed = false;
    if (!channelsHeard) return;
    channelsHeard = false;
    if (channels.size > 0) events?.interrupted([...channels]);
  };
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

  /** Runs the publish script; `frameHead` is `<report channel>\n<sequence>`. Resolves with [id, receivers]. */
  const runPublishScript = async (
    { destination, tenantKey, payload, idempotency }: PublishRequest,
    frameHead: string,
  ): Promise<[string, number]> => {
    if (publisher.status !== 'ready') throw new BrokerUnavailableError('Redis is unavailable: not connected (nothing was sent)');
    try {
      return (await publishScript.run(
        publisher,
        [tenantKey, destination.stream, idempotency?.key ?? tenantKey],
        [
          destination.channel,
          frameHead,
          payload,
          `${epochPrefix}${(++epochCandidates).toString(36)}`,
          retention.maxLength,
          retention.maxAgeMs,
          idempotency ? idempotency.windowMs : '',
        ],
      )) as [string, number];
    } catch (error) {
      throw outcomeOf('PUBLISH', error);
    }
  };

  subscriber.on('message', onMessage);
  subscriber.on('ready', onReady);
  subscriber.on('close', onClose);
  subscriber.on('error', onError);
  publisher.on('error', onError);
  if (subscriber.status === 'ready') onReady();

  return {
    listen(next, channelEvents) {
      if (sink) throw new Error('the broker already has a sink');
      sink = next;
      events = channelEvents;
    },
    async subscribe(channel) {
      if (closed) throw new BrokerUnavailableError('the broker is closed');
      channels.add(channel);
      try {
        await subscriber.subscribe(channel);
      } catch (error) {
        channels.delete(channel);
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
      channels.delete(channel);
      if (subscriber.status !== 'ready') return; // the next connection will not resubscribe it
      try {
        await subscriber.unsubscribe(channel);
      } catch (error) {
        logger.warn(`herald: UNSUBSCRIBE ${channel} failed: ${String(error)}`);
      }
    },
    async publish(request) {
      if (closed) throw new BrokerUnavailableError('the broker is closed');
      const { idempotency } = request;
      if (request.countDeliveries === false && idempotency === undefined) {
        // The frame names no report channel: no subscribe server reports, nobody waits.
        const [id] = await runPublishScript(request, `${SEPARATOR}0`);
        return { id, receivedUsers: undefined, duplicate: false };
      }
      if (!reportsSubscribed) throw new BrokerUnavailableError('Redis is unavailable: not connected (nothing was sent)');
      const reportId = String(++sequence);
      const entry: PendingPublish = { expected: undefined, reported: 0, delivered: 0, settle: undefined };
      pending.set(reportId, entry);
      let timer: NodeJS.Timeout | undefined;
      try {
        const [id, receivers] = await runPublishScript(request, `${reportChannel}${SEPARATOR}${reportId}`);
        if (receivers < 0) {
          const [firstId = id, count = '0'] = id.split(' ');
          return { id: firstId, receivedUsers: Number(count), duplicate: true };
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
        if (idempotency) {
          // A repeat of the key reports what the first publish reached.
          await publisher.set(idempotency.key, `${id} ${entry.delivered}`, 'KEEPTTL', 'XX').catch((error: unknown) => {
            logger.warn(`herald: could not remember deliveries of ${id}: ${String(error)}`);
          });
        }
        return { id, receivedUsers: entry.delivered, duplicate: false };
      } finally {
        clearTimeout(timer);
        pending.delete(reportId);
      }
    },
    async readAfter({ tenantKey, streams, after, limit }) {
      const perStreamCount = perStreamLimit(limit, streams.length);
      let reply: [string | null, ...Array<[number, string, StreamEntries]>];
      try {
        reply = (await readAfterScript.run(publisher, [tenantKey, ...streams], [streamId(after), perStreamCount])) as typeof reply;
      } catch (error) {
        throw unavailable('history read', error);
      }
      const [epoch, ...perStream] = reply;
      const states: StreamState[] = perStream.map(([exists, maxDeletedId]) => ({ exists: exists === 1, maxDeletedId }));
      const reason = findGap(after, epoch ?? undefined, states, Date.now(), retention.maxAgeMs);
      if (reason !== undefined) return { gap: true, reason };
      if (epoch === null) return { gap: false, entries: [], more: false };
      return { gap: false, ...mergePage(perStream.map(([, , entries]) => toMessages(epoch, entries)), perStreamCount) };
    },
    async readPage({ tenantKey, streams, before, limit }) {
      let replies: Array<[Error | null, unknown]> | null;
      try {
        const pipeline = publisher.pipeline().hget(tenantKey, 'epoch');
        for (const stream of streams) pipeline.xrevrange(stream, before ? `(${streamId(before)}` : '+', '-', 'COUNT', limit + 1);
        replies = await pipeline.exec();
      } catch (error) {
        throw unavailable('history read', error);
      }
      const failed = replies?.find(([error]) => error !== null);
      if (!replies || failed) throw unavailable('history read', failed?.[0] ?? 'no reply');
      const [[, epoch], ...perStream] = replies as [[null, string | null], ...Array<[null, StreamEntries]>];
      if (before && epoch !== before.epoch) {
        return { gap: true, reason: 'the cursor is from an earlier notification history; read from the newest' };
      }
      const merged = mergeNewestFirst(perStream.map(([, entries]) => toMessages(epoch ?? '', entries)));
      return { gap: false, entries: merged.slice(0, limit), hasMore: merged.length > limit };
    },
    isReady: () => !closed && healthy && reportsSubscribed && subscriber.status === 'ready' && publisher.status === 'ready',
    async close() {
      closed = true;
      clearInterval(healthCheck);
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
    },
  };
}

function toMessages(epoch: string, entries: StreamEntries): BrokerMessage[] {
  return entries.map(([entryId, fields]) => ({ id: `${epoch}_${entryId}`, payload: fields[1] ?? '' }));
}

/**
 * A failure to reach Redis becomes {@link BrokerUnavailableError}; an error Redis itself
 * answered (a script bug, a wrong type) is a fault of Herald's and is rethrown as it is.
 */
function unavailable(command: string, error: unknown): Error {
  if (error instanceof ReplyError) return error as Error;
  const reason = error instanceof Error ? error.message : String(error);
  return new BrokerUnavailableError(`Redis is unavailable (${command} failed: ${reason})`);
}

/**
 * Like {@link unavailable}, for a command that changes something: one ioredis did not
 * send is {@link BrokerUnavailableError}; one that was sent and then timed out or lost
 * its connection may have been carried out, and is {@link OutcomeUnknownError}.
 */
function outcomeOf(command: string, error: unknown): Error {
  if (error instanceof ReplyError) return error as Error;
  const reason = error instanceof Error ? error.message : String(error);
  if (reason.startsWith(NOT_SENT)) return new BrokerUnavailableError(`Redis is unavailable (${command} was not sent: ${reason})`);
  return new OutcomeUnknownError(
    `Redis did not confirm the ${command} (${reason}): it may or may not have been carried out; retry with the same idempotencyKey to be sure of one delivery`,
  );
}
