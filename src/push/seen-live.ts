/**
 * The `WHEN_OFFLINE` handshake between the subscribe servers and the push worker: a
 * subscribe server that delivered a notification to a live subscription of a user marks
 * (notification, user) as seen, with a short TTL; the worker, after the offline grace
 * window, pushes only to users without the mark.
 *
 * The mark outlives the grace window by a wide margin (`PUSH_SEEN_LIVE_TTL_MS`), so a
 * worker running behind still sees it; a worker more than that behind may push to a
 * user who saw the notification live.
 */
import type { Redis } from 'ioredis';
import type { PushKeys } from './keys.js';

export interface SeenLiveOptions {
  /** A connection for commands. */
  redis: Redis;
  keys: PushKeys;
  /**
   * How long a mark lives (`PUSH_SEEN_LIVE_TTL_MS`): longer than the offline grace
   * window plus the worker's usual lag.
   * @default 300000 (5 minutes)
   */
  ttlMs?: number;
}

export interface SeenLive {
  /** Marks `users` as having received notification `notificationId` live. */
  mark(tenant: string, notificationId: string, users: readonly string[]): Promise<void>;
  /** Whether `user` received notification `notificationId` live. */
  seen(tenant: string, notificationId: string, user: string): Promise<boolean>;
}

export function createSeenLive(options: SeenLiveOptions): SeenLive {
  const { redis, keys } = options;
  const ttlMs = options.ttlMs ?? 300_000;
  return {
    async mark(tenant, notificationId, users) {
      // Plain commands, not a pipeline of their own: on Herald's connections
      // (`redisClientOptions`: auto-pipelining) they leave in the same write as the
      // turn's other commands — the delivery reports — instead of one write more per
      // notification (issue 17).
      await Promise.all([...new Set(users)].map((user) => redis.set(keys.seenLive(tenant, notificationId, user), '1', 'PX', ttlMs)));
    },
    async seen(tenant, notificationId, user) {
      return (await redis.exists(keys.seenLive(tenant, notificationId, user))) === 1;
    },
  };
}
