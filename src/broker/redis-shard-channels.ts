/**
 * Channel subscriptions on a Redis Cluster, with sharded Pub/Sub: each channel is
 * SSUBSCRIBEd on the master that owns its hash slot, over one subscriber connection per
 * master, and notifications are SPUBLISHed inside that shard only.
 *
 * Why not ioredis' own `shardedSubscribers`: it re-sends SSUBSCRIBE after a failover or
 * a slot move by itself and drops the failures (debug log only), so nobody learns which
 * channels were unheard, and for how long. Herald must know: a subscription that missed
 * notifications fills the gap from history. So this module keeps the channels the way
 * `redis-channels.ts` keeps them on one node — every SSUBSCRIBE awaited — and tells the
 * observers `interrupted` when a shard connection is lost and `resubscribed` once its
 * channels are heard again, wherever their slots are now served.
 *
 * A shard connection is given up (and its channels placed again from a fresh slot map)
 * when it closes — the master died or failed over — and when it gets a reply it did not
 * ask for: Redis 7 pushes SUNSUBSCRIBE to the subscribers of a slot that moved to another
 * master, which ioredis reports as an error. The slot map is also compared with where
 * each channel is heard whenever ioredis refreshes it, so a move is noticed even if that
 * push is missed.
 */
import calculateSlot from 'cluster-key-slot';
import type { Cluster, Redis } from 'ioredis';
import { createMessageReceiver, type RedisChannels, type RedisChannelsOptions } from './redis-channels.js';
import { type ChannelEvents, type MessageHandler } from './types.js';
import { BrokerUnavailableError } from '../common/failures.js';

/** Where a master listens. */
export interface ShardNode {
  readonly host: string;
  readonly port: number;
}

export interface ShardChannelsOptions extends Omit<RedisChannelsOptions, 'subscriber'> {
  /** The command client: its slot map says which master serves a channel. */
  cluster: Cluster;
  /**
   * Opens a subscriber connection to one master, with Herald's client rules (no offline
   * queue, nothing resubscribed behind the broker's back). It is never reconnected: a
   * lost one is replaced.
   */
  connect(node: ShardNode): Redis;
  /** The first wait before placing unheard channels again after a failure; doubles up to 2 s. @default 100 (ms) */
  retryDelayMs?: number;
  /**
   * How long one placement may take — refreshing the slot map, connecting to each master,
   * SSUBSCRIBE — before it is given up, logged with what it was waiting on, and tried
   * again after the backoff. Each of those is bounded by the client's own timeouts; this
   * bounds them all together, so that one that never settles (a lost callback) cannot
   * stop every later placement. Keep it above a slot-map refresh plus a connection's
   * connect and ready check.
   * @default 10000 (ms)
   */
  attemptTimeoutMs?: number;
}

/** One master's subscriber connection and the channels confirmed on it. */
interface Shard {
  readonly nodeKey: string;
  readonly redis: Redis;
  readonly channels: Set<string>;
  /** Resolves once the connection is ready; rejects if it closes first. */
  readonly ready: Promise<void>;
}

const MAX_RETRY_DELAY_MS = 2000;

/** Settles as `work` does, or rejects with `timedOut()` after `ms`, whichever comes first. */
function withDeadline<T>(work: Promise<T>, ms: number, timedOut: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timedOut()), ms);
    timer.unref();
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

export function createShardChannels(options: ShardChannelsOptions): RedisChannels {
  const { cluster, reportChannel, logger } = options;
  /** Every channel wanted: the handler's and the report channel. */
  const wanted = new Set<string>([reportChannel]);
  /** Where each wanted channel is confirmed subscribed. */
  const placement = new Map<string, Shard>();
  const shards = new Map<string, Shard>();
  /** Channels the observers were told are interrupted, not yet told resubscribed. */
  const interrupted = new Set<string>();
  let handler: MessageHandler | undefined;
  let events: ChannelEvents | undefined;
  let closed = false;
  let retryDelayMs = options.retryDelayMs ?? 100;
  let retryTimer: NodeJS.Timeout | undefined;
  let placing: Promise<void> | undefined;
  let placeAgain = false;
  const attemptTimeoutMs = options.attemptTimeoutMs ?? 10_000;

  const onMessage = createMessageReceiver(options, (channel) => (channel !== reportChannel && wanted.has(channel) ? handler : undefined));

  const ownerOf = (channel: string): string | undefined => cluster.slots[calculateSlot(channel)]?.[0];

  const refreshSlots = (): Promise<void> =>
    new Promise((resolve, reject) => cluster.refreshSlotsCache((error) => (error ? reject(error) : resolve())));

  /** Forgets `shard`: its channels are unheard (observers told) until placed again. */
  const lose = (shard: Shard, why: string): void => {
    if (shards.get(shard.nodeKey) !== shard) return;
    shards.delete(shard.nodeKey);
    const lost: string[] = [];
    for (const channel of shard.channels) {
      if (placement.get(channel) !== shard) continue;
      placement.delete(channel);
      if (channel !== reportChannel && wanted.has(channel) && !interrupted.has(channel)) {
        interrupted.add(channel);
        lost.push(channel);
      }
    }
    shard.redis.disconnect();
    if (lost.length > 0) events?.interrupted(lost);
    // A connection that held nothing was a placement's own attempt (the master it dialled
    // is down, say): that placement failed with it and retries after its backoff. Placing
    // again now would dial the dead master again at once, in a loop, for the whole failover.
    if (shard.channels.size === 0 || closed) return;
    logger.warn(`herald: lost the sharded subscriber of ${shard.nodeKey} (${why}); placing ${shard.channels.size} channels again`);
    schedulePlacement(0);
  };

  const shardOf = (nodeKey: string): Shard => {
    const existing = shards.get(nodeKey);
    if (existing) return existing;
    const separator = nodeKey.lastIndexOf(':');
    const redis = options.connect({ host: nodeKey.slice(0, separator), port: Number(nodeKey.slice(separator + 1)) });
    const shard: Shard = {
      nodeKey,
      redis,
      channels: new Set(),
      ready: new Promise<void>((resolve, reject) => {
        if (redis.status === 'ready') return resolve();
        redis.once('ready', resolve);
        redis.once('close', () => reject(new BrokerUnavailableError(`Redis is unavailable: the sharded subscriber of ${nodeKey} closed`)));
      }),
    };
    shard.ready.catch(() => undefined); // a closed connection is handled by 'close' below
    redis.on('smessage', onMessage);
    redis.on('close', () => lose(shard, 'connection closed'));
    redis.on('error', (error: Error) => {
      // A reply nobody asked for: SUNSUBSCRIBE pushed because the slot moved (or a
      // desynchronised connection). Its replies can no longer be trusted: replace it.
      if (error.message.startsWith('Command queue state error')) lose(shard, 'Redis unsubscribed it: a slot moved');
      else logger.warn(`herald: sharded subscriber of ${nodeKey}: ${error.message}`);
    });
    shards.set(nodeKey, shard);
    return shard;
  };

  /** Awaits `work`, named in `waitingOn` meanwhile (what a placement that takes too long was waiting on). */
  const waitFor = async <T>(waitingOn: Set<string>, what: string, work: Promise<T>): Promise<T> => {
    waitingOn.add(what);
    try {
      return await work;
    } finally {
      waitingOn.delete(what);
    }
  };

  /** SSUBSCRIBEs `channels` (one slot's owner) on `shard`; they are placed there once confirmed. */
  const subscribeOn = async (shard: Shard, channels: string[], waitingOn = new Set<string>()): Promise<void> => {
    await waitFor(waitingOn, `the connection to ${shard.nodeKey}`, shard.ready);
    await waitFor(waitingOn, `SSUBSCRIBE on ${shard.nodeKey}`, shard.redis.ssubscribe(...channels));
    if (shards.get(shard.nodeKey) !== shard) throw new BrokerUnavailableError(`Redis is unavailable: the sharded subscriber of ${shard.nodeKey} closed`);
    for (const channel of channels) {
      shard.channels.add(channel);
      placement.set(channel, shard);
    }
  };

  /**
   * Places every wanted channel that is unheard, or heard on a master that no longer
   * serves its slot, on its slot's owner; tells the observers of those that were
   * interrupted once they are heard again. Retried with a growing delay until all are.
   * What it waits on is kept in `waitingOn`.
   */
  const place = async (waitingOn: Set<string>): Promise<void> => {
    await waitFor(waitingOn, 'a slot-map refresh', refreshSlots());
    const byOwner = new Map<string, string[]>();
    for (const channel of wanted) {
      const owner = ownerOf(channel);
      if (owner === undefined) throw new BrokerUnavailableError(`no master serves the slot of ${channel}`);
      const current = placement.get(channel);
      if (current?.nodeKey === owner) continue;
      if (current) {
        // Heard where its slot no longer is: notifications now go elsewhere.
        placement.delete(channel);
        current.channels.delete(channel);
        current.redis.sunsubscribe(channel).catch(() => undefined);
        if (channel !== reportChannel && !interrupted.has(channel)) {
          interrupted.add(channel);
          events?.interrupted([channel]);
        }
      }
      byOwner.set(owner, [...(byOwner.get(owner) ?? []), channel]);
    }
    // One SSUBSCRIBE per slot: a command's channels must share one.
    const bySlot = new Map<string, string[]>();
    for (const [owner, channels] of byOwner) {
      for (const channel of channels) {
        const key = `${owner} ${calculateSlot(channel)}`;
        bySlot.set(key, [...(bySlot.get(key) ?? []), channel]);
      }
    }
    await Promise.all([...bySlot].map(([key, channels]) => subscribeOn(shardOf(key.slice(0, key.indexOf(' '))), channels, waitingOn)));
    const heardAgain = [...interrupted].filter((channel) => placement.has(channel));
    for (const channel of heardAgain) interrupted.delete(channel);
    for (const channel of interrupted) if (!wanted.has(channel)) interrupted.delete(channel);
    if (heardAgain.length > 0) events?.resubscribed(heardAgain);
  };

  function schedulePlacement(delayMs: number): void {
    if (closed || retryTimer) return;
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      void runPlacement();
    }, delayMs);
    retryTimer.unref();
  }

  /** Runs {@link place} once at a time; a request while one runs runs it again after. */
  async function runPlacement(): Promise<void> {
    if (placing) {
      placeAgain = true;
      return placing;
    }
    let failed = false;
    // An attempt given up here may still finish later: what it confirmed is placed then
    // (subscribeOn checks its shard is still the current one), and the next attempt skips it.
    const waitingOn = new Set<string>();
    const attempt = withDeadline(
      place(waitingOn),
      attemptTimeoutMs,
      () => new BrokerUnavailableError(`Redis is unavailable: placing the sharded channels took over ${attemptTimeoutMs} ms (waiting on ${[...waitingOn].join(', ') || 'nothing'})`),
    );
    placing = attempt.then(
      () => {
        retryDelayMs = options.retryDelayMs ?? 100;
      },
      (error: unknown) => {
        failed = true;
        if (closed) return;
        logger.warn(`herald: could not place the sharded channels (${String(error)}); retrying in ${retryDelayMs} ms`);
        schedulePlacement(retryDelayMs);
        retryDelayMs = Math.min(retryDelayMs * 2, MAX_RETRY_DELAY_MS);
      },
    );
    try {
      await placing;
    } finally {
      placing = undefined;
      if (placeAgain && !closed) {
        placeAgain = false;
        // After a failure, the retry its backoff scheduled places everything: not again now.
        if (!failed) void runPlacement();
      }
    }
  }

  /** A refreshed slot map: a channel heard where its slot no longer is gets placed again. */
  const onRefresh = (): void => {
    for (const [channel, shard] of placement) {
      if (ownerOf(channel) !== shard.nodeKey) return schedulePlacement(0);
    }
  };
  cluster.on('refresh', onRefresh);
  const onClusterReady = (): void => schedulePlacement(0);
  cluster.on('ready', onClusterReady);
  if (cluster.status === 'ready') schedulePlacement(0);

  const unsubscribe = async (channel: string): Promise<void> => {
    if (channel === reportChannel) return;
    wanted.delete(channel);
    interrupted.delete(channel);
    const shard = placement.get(channel);
    if (!shard) return;
    placement.delete(channel);
    shard.channels.delete(channel);
    if (shard.redis.status !== 'ready') return;
    try {
      await shard.redis.sunsubscribe(channel);
    } catch (error) {
      logger.warn(`herald: SUNSUBSCRIBE ${channel} failed: ${String(error)}`);
    }
  };

  return {
    listen(next, channelEvents) {
      if (handler) throw new Error('the broker already has a message handler');
      handler = next;
      events = channelEvents;
    },
    async subscribe(channel) {
      if (closed) throw new BrokerUnavailableError('the broker is closed');
      wanted.add(channel);
      try {
        if (cluster.status !== 'ready') throw new BrokerUnavailableError('Redis is unavailable: the cluster is not connected');
        let owner = ownerOf(channel);
        if (owner === undefined) {
          await refreshSlots();
          owner = ownerOf(channel);
        }
        if (owner === undefined) throw new BrokerUnavailableError(`Redis is unavailable: no master serves the slot of ${channel}`);
        await subscribeOn(shardOf(owner), [channel]);
      } catch (error) {
        wanted.delete(channel);
        const shard = placement.get(channel);
        placement.delete(channel);
        shard?.channels.delete(channel);
        shard?.redis.sunsubscribe(channel).catch(() => undefined);
        // A MOVED reply means the slot map is stale: refresh it for the next try.
        if (/^MOVED\b/.test(String((error as Error)?.message))) schedulePlacement(0);
        throw error instanceof BrokerUnavailableError ? error : new BrokerUnavailableError(`Redis is unavailable (SSUBSCRIBE failed: ${String(error)})`);
      }
      // Unsubscribed meanwhile: undo it.
      if (!wanted.has(channel)) await unsubscribe(channel);
    },
    unsubscribe,
    get heard() {
      return placement.has(reportChannel) && placement.get(reportChannel)?.redis.status === 'ready';
    },
    connections: () => [...shards.values()].map((shard) => shard.redis),
    async close() {
      closed = true;
      clearTimeout(retryTimer);
      cluster.off('refresh', onRefresh);
      cluster.off('ready', onClusterReady);
      wanted.clear();
      placement.clear();
      interrupted.clear();
      const all = [...shards.values()];
      shards.clear();
      await Promise.all(all.map((shard) => shard.redis.quit().catch(() => shard.redis.disconnect())));
    },
  };
}
