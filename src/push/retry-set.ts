/**
 * The durable schedule of push retries: per shard of the push stream, a sorted set of due
 * retries (`keys.retrySets`) and a hash of what each sends (`keys.retryData`), both in the
 * shard's hash tag, so each script below touches one slot.
 *
 * A member is `<tenant>/<notification id>/<device id>` (none of the three holds a `/`),
 * its score the time it is due, ms since the epoch. A worker claims due members by moving
 * their score to the end of a lease (now + lease): a worker that dies mid-retry leaves the
 * member to be claimed again once its lease has passed, and a live one renews the lease
 * while it holds the member. Every time is the caller's (`now`), passed in ARGV, so a
 * test can drive the clock.
 *
 * The send marker (`send-markers.ts`) says which attempt is next; the data here is what
 * to send (the notification, the user, the device) and when the first attempt failed.
 */
import type { RedisClient } from '../redis/connect.js';
import { parsePushNotification, type PushNotification } from './entry.js';
import { isValidName } from '../names/index.js';
import type { PushKeys } from './keys.js';

/** What a scheduled retry sends. */
export interface RetryRecord {
  readonly notification: PushNotification;
  readonly user: string;
  readonly deviceId: string;
  /** The attempt scheduled (the send marker's word wins). */
  readonly attempt: number;
  /** When the first attempt failed, ms since the epoch: the retry window's start (for attempt 1, deferred by quiet hours: when it is due). */
  readonly firstFailedAt: number;
}

/** A member this worker claimed: its lease ends at `leaseUntil` (renewed by the poller). */
export interface HeldRetry {
  readonly shard: number;
  readonly member: string;
  /** Undefined when its data was unreadable (the member is dropped). */
  readonly record: RetryRecord | undefined;
  leaseUntil: number;
}

/** One shard's schedule, for metrics and the summary. */
export interface RetryLag {
  /** The retry set's key. */
  readonly set: string;
  /** Retries scheduled (held ones included). */
  readonly scheduled: number;
  /** How long the oldest due retry no worker holds has been due, in ms (0: none overdue). */
  readonly oldestOverdueMs: number;
}

export interface RetrySet {
  /** Schedules (or moves) the retry of `record` on `shard`, due at `at`. */
  schedule(shard: number, record: RetryRecord, at: number): Promise<void>;
  /** Adds the retry due at `at` unless it is scheduled already (a crash between marker and set left it out). */
  ensure(shard: number, record: RetryRecord, at: number): Promise<void>;
  /** Claims up to `count` retries due by `now` on `shard`, each leased until `now + leaseMs`. */
  claimDue(shard: number, now: number, leaseMs: number, count: number): Promise<HeldRetry[]>;
  /** Moves the leases of `held` (on one shard) to `until`; a member no longer held at its lease is left alone. */
  renew(shard: number, held: readonly HeldRetry[], until: number): Promise<void>;
  /** Removes a held member (settled, or nothing left to send), unless another holds it now. */
  settle(held: HeldRetry): Promise<void>;
  /** Gives a held member back, due at `now` (a worker stopping before it sent). */
  release(held: HeldRetry, now: number): Promise<void>;
  /** Each shard's schedule. */
  lags(now: number): Promise<RetryLag[]>;
}

/** KEYS: set, data. ARGV: now, lease end, count. Returns [member, data, …] of the claimed. */
const CLAIM_SCRIPT = `
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local claimed = {}
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], ARGV[2], member)
  claimed[#claimed + 1] = member
  claimed[#claimed + 1] = redis.call('HGET', KEYS[2], member) or ''
end
return claimed
`;

/** KEYS: set. ARGV: new score, then member/old score pairs: moved only where the score is still the old one. */
const MOVE_IF_HELD_SCRIPT = `
for i = 2, #ARGV, 2 do
  if tonumber(redis.call('ZSCORE', KEYS[1], ARGV[i]) or '-1') == tonumber(ARGV[i + 1]) then
    redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])
  end
end
return 0
`;

/** KEYS: set, data. ARGV: member, its lease end. Removes it only if still held at that lease. */
const SETTLE_SCRIPT = `
if tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or '-1') == tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 1
end
return 0
`;

/** KEYS: set, data. ARGV: member, due, data, 'NX' or ''. */
const SCHEDULE_SCRIPT = `
if ARGV[4] == 'NX' then
  if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
`;

type Commands = {
  heraldClaimRetries(set: string, data: string, now: number, until: number, count: number): Promise<string[]>;
  heraldMoveIfHeld(set: string, ...args: Array<string | number>): Promise<number>;
  heraldSettleRetry(set: string, data: string, member: string, lease: number): Promise<number>;
  heraldScheduleRetry(set: string, data: string, member: string, at: number, json: string, mode: string): Promise<number>;
};

const memberOf = (record: { readonly notification: { readonly tenant: string; readonly id: string }; readonly deviceId: string }): string =>
  `${record.notification.tenant}/${record.notification.id}/${record.deviceId}`;

export function createRetrySet(redis: RedisClient, keys: PushKeys): RetrySet {
  if (!('heraldClaimRetries' in redis)) {
    redis.defineCommand('heraldClaimRetries', { numberOfKeys: 2, lua: CLAIM_SCRIPT });
    redis.defineCommand('heraldMoveIfHeld', { numberOfKeys: 1, lua: MOVE_IF_HELD_SCRIPT });
    redis.defineCommand('heraldSettleRetry', { numberOfKeys: 2, lua: SETTLE_SCRIPT });
    redis.defineCommand('heraldScheduleRetry', { numberOfKeys: 2, lua: SCHEDULE_SCRIPT });
  }
  const commands = redis as unknown as Commands;
  const keysOf = (shard: number): [string, string] => {
    const set = keys.retrySets[shard];
    const data = keys.retryData[shard];
    if (set === undefined || data === undefined) throw new Error(`push: no retry set for shard ${shard}`);
    return [set, data];
  };
  const write = async (shard: number, record: RetryRecord, at: number, mode: string): Promise<void> => {
    const [set, data] = keysOf(shard);
    await commands.heraldScheduleRetry(set, data, memberOf(record), at, JSON.stringify(record), mode);
  };
  return {
    schedule: (shard, record, at) => write(shard, record, at, ''),
    ensure: (shard, record, at) => write(shard, record, at, 'NX'),
    async claimDue(shard, now, leaseMs, count) {
      const [set, data] = keysOf(shard);
      const leaseUntil = now + leaseMs;
      const reply = await commands.heraldClaimRetries(set, data, now, leaseUntil, count);
      const held: HeldRetry[] = [];
      for (let i = 0; i + 1 < reply.length; i += 2) {
        held.push({ shard, member: reply[i] as string, record: decodeRetryRecord(reply[i + 1] as string), leaseUntil });
      }
      return held;
    },
    async renew(shard, held, until) {
      if (held.length === 0) return;
      const [set] = keysOf(shard);
      const pairs = held.flatMap((one) => [one.member, one.leaseUntil]);
      // before the command goes: a settle sent after it names the new lease, and runs after it
      for (const one of held) one.leaseUntil = until;
      await commands.heraldMoveIfHeld(set, until, ...pairs);
    },
    async settle(held) {
      const [set, data] = keysOf(held.shard);
      await commands.heraldSettleRetry(set, data, held.member, held.leaseUntil);
    },
    async release(held, now) {
      const [set] = keysOf(held.shard);
      await commands.heraldMoveIfHeld(set, now, held.member, held.leaseUntil);
    },
    async lags(now) {
      return Promise.all(
        keys.retrySets.map(async (set) => {
          const [scheduled, first] = await Promise.all([redis.zcard(set), redis.zrange(set, 0, 0, 'WITHSCORES')]);
          const score = first[1] === undefined ? undefined : Number(first[1]);
          return { set, scheduled, oldestOverdueMs: score === undefined ? 0 : Math.max(0, now - score) };
        }),
      );
    },
  };
}

/** Parses a stored {@link RetryRecord}; undefined if it is not one. */
function decodeRetryRecord(raw: string): RetryRecord | undefined {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { notification, user, deviceId, attempt, firstFailedAt } = value as Record<string, unknown>;
  const parsed = parsePushNotification(notification);
  if (parsed === undefined || !isValidName(user) || typeof deviceId !== 'string') return undefined;
  if (typeof attempt !== 'number' || typeof firstFailedAt !== 'number') return undefined;
  return { notification: parsed, user, deviceId, attempt, firstFailedAt };
}
