/**
 * The `WHEN_OFFLINE` handshake between the subscribe servers and the push worker: a
 * subscribe server that delivered a notification to a live subscription of a user marks
 * (notification, user) as seen, with a short TTL; the worker, after the offline grace
 * window, pushes only to users without the mark.
 *
 * The mark outlives the grace window by a wide margin (`PUSH_SEEN_LIVE_TTL_MS`), so a
 * worker running behind still sees it; a worker more than that behind may push to a
 * user who saw the notification live.
 *
 * Marks are written in batches (a command per delivery was a Redis round trip per
 * notification): nobody reads one before the grace window has
 * passed, so the marks of a short window (`batchMs`, well inside the grace window) go to
 * Redis as one script call per tenant. One command per delivered notification — its
 * ioredis pipeline, its reply and the wake-up that reads it — had been most of what a
 * subscribe server allocated per notification when notifications come one at a time.
 */
import type { RedisClient } from '../redis/connect.js';
import type { PushKeys } from './keys.js';

export interface SeenLiveOptions {
  /** A connection for commands. */
  redis: RedisClient;
  keys: PushKeys;
  /**
   * How long a mark lives (`PUSH_SEEN_LIVE_TTL_MS`): longer than the offline grace
   * window plus the worker's usual lag.
   * @default 300000 (5 minutes)
   */
  ttlMs?: number;
  /**
   * How long a mark waits to be written with the others (0: at the end of the event
   * loop's turn); 10,000 marks waiting are written at once. Keep it well inside the worker's offline grace window
   * (`PUSH_OFFLINE_GRACE_MS`): a mark written after the worker looked is no mark.
   * @default 100
   */
  batchMs?: number;
  /** Where a batch that could not be written is reported. @default console */
  logger?: Pick<Console, 'warn'>;
}

export interface SeenLive {
  /**
   * Marks `users` as having received notification `notificationId` live. Written within
   * `batchMs`, with the other marks of that window; a failed write is logged (a lost mark
   * costs at most one push to a user who saw the notification live).
   */
  mark(tenant: string, notificationId: string, users: readonly string[]): void;
  /** Writes the marks waiting now; resolves once Redis has them (shutdown, tests). */
  flush(): Promise<void>;
  /** Whether `user` received notification `notificationId` live. */
  seen(tenant: string, notificationId: string, user: string): Promise<boolean>;
}

/** Sets every key (`SET … PX`), one script call for many marks. */
const MARK_SCRIPT = `
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], '1', 'PX', ARGV[1])
end
return #KEYS`;

/** Keys per script call: a long batch is split, so Redis is never busy with one for long. */
const MAX_KEYS_PER_CALL = 1000;
/**
 * Marks held at most (about 1 MB of keys): a window that collects more — a topic with
 * many followers online — is written at once instead of at the window's end.
 */
const MAX_WAITING_KEYS = 10_000;

type MarkingRedis = RedisClient & { heraldMarkSeenLive(numberOfKeys: number, ...keysAndTtl: Array<string | number>): Promise<number> };

export function createSeenLive(options: SeenLiveOptions): SeenLive {
  const { keys } = options;
  const ttlMs = options.ttlMs ?? 300_000;
  const batchMs = options.batchMs ?? 100;
  const logger = options.logger ?? console;
  const redis = options.redis as MarkingRedis;
  redis.defineCommand('heraldMarkSeenLive', { lua: MARK_SCRIPT });
  /** The marks waiting, by tenant: each tenant's keys share its hash tag (one slot). */
  let waiting = new Map<string, Set<string>>();
  let waitingKeys = 0;
  let scheduled = false;

  const write = (batch: Map<string, Set<string>>): Promise<void> => {
    const calls: Array<Promise<unknown>> = [];
    for (const tenantKeys of batch.values()) {
      const all = [...tenantKeys];
      for (let start = 0; start < all.length; start += MAX_KEYS_PER_CALL) {
        const part = all.slice(start, start + MAX_KEYS_PER_CALL);
        calls.push(redis.heraldMarkSeenLive(part.length, ...part, ttlMs));
      }
    }
    return Promise.all(calls).then(
      () => undefined,
      (error: unknown) => {
        logger.warn(`herald: could not mark notifications seen live: ${error instanceof Error ? error.message : String(error)}`);
      },
    );
  };
  const flush = (): Promise<void> => {
    scheduled = false;
    const batch = waiting;
    if (batch.size === 0) return Promise.resolve();
    waiting = new Map();
    waitingKeys = 0;
    return write(batch);
  };
  const flushLater = (): void => void flush();

  return {
    mark(tenant, notificationId, users) {
      let tenantKeys = waiting.get(tenant);
      if (tenantKeys === undefined) {
        tenantKeys = new Set();
        waiting.set(tenant, tenantKeys);
      }
      const before = tenantKeys.size;
      for (const user of users) tenantKeys.add(keys.seenLive(tenant, notificationId, user));
      waitingKeys += tenantKeys.size - before;
      if (waitingKeys >= MAX_WAITING_KEYS) {
        void flush();
        return;
      }
      if (scheduled) return;
      scheduled = true;
      if (batchMs === 0) setImmediate(flushLater);
      else setTimeout(flushLater, batchMs).unref();
    },
    flush,
    async seen(tenant, notificationId, user) {
      return (await redis.exists(keys.seenLive(tenant, notificationId, user))) === 1;
    },
  };
}
