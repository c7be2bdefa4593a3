/**
 * The per-(notification, device) marker that makes a re-delivered entry send nothing
 * twice. Its value says where the push stands:
 *
 * - `inflight:<entry id>:<consumer>` — claimed by that worker for that stream entry
 *   (`SET … NX PX`), which is sending it now or will (the first attempt);
 * - `retry:<n>` — attempt `n` is scheduled in the retry set (`retry-set.ts`), nobody holds it;
 * - `inflight:retry-<n>:<consumer>` — attempt `n`, claimed from the retry set by that worker;
 * - `sent`, `gone` (the device no longer exists), `dead` (dead-lettered) or `skipped` (held
 *   back by the user's preferences, `preference-gate.ts`) — done.
 *
 * A push deferred by quiet hours is `retry:1`: its first attempt, in the retry set, the
 * marker kept `PUSH_DEDUP_TTL_SECONDS` past the time it is due ({@link SendMarkers.defer}).
 *
 * A worker that finds the marker of the very entry it is processing, left by another
 * delivery of that entry, knows that delivery's worker died or stalled mid-send: the push
 * may or may not have gone out, and it is dead-lettered rather than risk a duplicate. The
 * same holds for a retry found `inflight:retry-<n>:…` by the worker that claims it next.
 * The marker, not the retry set, says which attempt is next: a marker `retry:<n>` is
 * claimed whatever attempt the set's copy names, so a stale copy of an earlier attempt
 * never makes a later one look like a duplicate.
 */
import type { RedisClient } from '../redis/connect.js';
import type { PushKeys } from './keys.js';

export type ClaimResult =
  /** This worker now owns the send. */
  | 'claimed'
  /** Done already (or the device is gone). */
  | 'done'
  /** Claimed by an earlier delivery of this same entry: its outcome is unknown. */
  | 'orphaned'
  /** Claimed for another entry of the same notification (a follower listed twice), which sends it. */
  | 'elsewhere'
  /** Its next attempt is in the retry set (`retry:<n>`): the set's holder sends it. */
  | 'scheduled';

/** What claiming a retry found. */
export type RetryClaim =
  /** This worker now holds attempt `attempt`. */
  | { readonly state: 'claimed'; readonly attempt: number }
  /** Done already: nothing to send. */
  | { readonly state: 'done' }
  /** A worker died or stalled mid-send of attempt `attempt`: its outcome is unknown. */
  | { readonly state: 'orphaned'; readonly attempt: number }
  /** Held by a stream entry (a replay's first attempt), which schedules its own retry if needed. */
  | { readonly state: 'elsewhere' }
  /** No marker (it outlived `PUSH_DEDUP_TTL_SECONDS`): whether it was sent is unknown. */
  | { readonly state: 'missing' };

/** Who holds a marker: a stream entry's first attempt, or a retry. */
export type MarkerHolder = { readonly entryId: string } | { readonly retry: number };

export type FinalState = 'sent' | 'gone' | 'dead' | 'skipped';

/**
 * KEYS: the marker. ARGV: this claim's value, TTL (ms), `inflight:<entry id>:` prefix,
 * '1' when the entry is a replay (which may take over a `dead` marker).
 */
const CLAIM_SCRIPT = `
local current = redis.call('GET', KEYS[1])
if not current or (ARGV[4] == '1' and current == 'dead') then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 'claimed'
end
if current == 'sent' or current == 'gone' or current == 'dead' or current == 'skipped' then return 'done' end
if string.sub(current, 1, #ARGV[3]) == ARGV[3] then return 'orphaned' end
if string.sub(current, 1, 6) == 'retry:' then return 'scheduled' end
return 'elsewhere'
`;

/** KEYS: the marker. ARGV: this consumer. Claims a scheduled retry (`retry:<n>`), whatever its n. */
const CLAIM_RETRY_SCRIPT = `
local current = redis.call('GET', KEYS[1])
if not current then return {'missing', '0'} end
if current == 'sent' or current == 'gone' or current == 'dead' or current == 'skipped' then return {'done', '0'} end
local scheduled = string.match(current, '^retry:(%d+)$')
if scheduled then
  redis.call('SET', KEYS[1], 'inflight:retry-' .. scheduled .. ':' .. ARGV[1], 'KEEPTTL')
  return {'claimed', scheduled}
end
local orphaned = string.match(current, '^inflight:retry%-(%d+):')
if orphaned then return {'orphaned', orphaned} end
return {'elsewhere', '0'}
`;

/** KEYS: the marker. ARGV: the value it must hold, the value to set. Keeps the TTL. */
const MOVE_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
  return 1
end
return 0
`;

/**
 * KEYS: the marker. ARGV: the value it must hold, the value to set, its TTL (ms), which
 * only lengthens the one it has.
 */
const MOVE_KEEPING_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if tonumber(ARGV[3]) > redis.call('PTTL', KEYS[1]) then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  else
    redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
  end
  return 1
end
return 0
`;

/** KEYS: the marker. ARGV: the value it must hold. Deletes it only if it still holds that. */
const RELEASE_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

export interface SendMarkers {
  claim(tenant: string, notificationId: string, deviceId: string, entryId: string, replay: boolean): Promise<ClaimResult>;
  /** Records the final state, keeping the marker's TTL. */
  finish(tenant: string, notificationId: string, deviceId: string, state: FinalState): Promise<void>;
  /** Gives a claim back (a send abandoned at shutdown before it went out), so the next delivery sends it. */
  release(tenant: string, notificationId: string, deviceId: string, entryId: string): Promise<void>;
  /** Claims the scheduled retry of (notification, device) for this worker. */
  claimRetry(tenant: string, notificationId: string, deviceId: string): Promise<RetryClaim>;
  /**
   * Moves a claim `holder` holds to `retry:<attempt>` (scheduled); false when the marker
   * no longer holds that claim (then nothing is scheduled).
   */
  schedule(tenant: string, notificationId: string, deviceId: string, holder: MarkerHolder, attempt: number): Promise<boolean>;
  /**
   * Moves a claim `holder` holds to `retry:1` (the first attempt, deferred by quiet hours
   * for `waitMs`), kept at least `PUSH_DEDUP_TTL_SECONDS` past the wait; false when the
   * marker no longer holds that claim.
   */
  defer(tenant: string, notificationId: string, deviceId: string, holder: MarkerHolder, waitMs: number): Promise<boolean>;
}

type ClaimCommand = (key: string, value: string, ttlMs: number, prefix: string, replay: string) => Promise<string>;
type ReleaseCommand = (key: string, value: string) => Promise<number>;
type ClaimRetryCommand = (key: string, consumer: string) => Promise<[string, string]>;
type MoveCommand = (key: string, from: string, to: string) => Promise<number>;
type MoveKeepingCommand = (key: string, from: string, to: string, ttlMs: number) => Promise<number>;

export function createSendMarkers(redis: RedisClient, keys: PushKeys, consumer: string, ttlMs: number): SendMarkers {
  if (!('heraldClaimSend' in redis)) {
    redis.defineCommand('heraldClaimSend', { numberOfKeys: 1, lua: CLAIM_SCRIPT });
    redis.defineCommand('heraldReleaseSend', { numberOfKeys: 1, lua: RELEASE_SCRIPT });
    redis.defineCommand('heraldClaimRetry', { numberOfKeys: 1, lua: CLAIM_RETRY_SCRIPT });
    redis.defineCommand('heraldMoveMarker', { numberOfKeys: 1, lua: MOVE_SCRIPT });
  }
  if (!('heraldMoveMarkerKeeping' in redis)) redis.defineCommand('heraldMoveMarkerKeeping', { numberOfKeys: 1, lua: MOVE_KEEPING_SCRIPT });
  const commands = redis as unknown as { heraldClaimSend: ClaimCommand; heraldReleaseSend: ReleaseCommand; heraldClaimRetry: ClaimRetryCommand; heraldMoveMarker: MoveCommand; heraldMoveMarkerKeeping: MoveKeepingCommand };
  const value = (entryId: string): string => `inflight:${entryId}:${consumer}`;
  const retryValue = (attempt: number): string => `inflight:retry-${attempt}:${consumer}`;
  const heldValue = (holder: MarkerHolder): string => ('entryId' in holder ? value(holder.entryId) : retryValue(holder.retry));
  return {
    async claim(tenant, notificationId, deviceId, entryId, replay) {
      const key = keys.sendMarker(tenant, notificationId, deviceId);
      const result = await commands.heraldClaimSend(key, value(entryId), ttlMs, `inflight:${entryId}:`, replay ? '1' : '0');
      return result as ClaimResult;
    },
    async finish(tenant, notificationId, deviceId, state) {
      await redis.set(keys.sendMarker(tenant, notificationId, deviceId), state, 'KEEPTTL', 'XX');
    },
    async release(tenant, notificationId, deviceId, entryId) {
      await commands.heraldReleaseSend(keys.sendMarker(tenant, notificationId, deviceId), value(entryId));
    },
    async claimRetry(tenant, notificationId, deviceId) {
      const [state, attempt] = await commands.heraldClaimRetry(keys.sendMarker(tenant, notificationId, deviceId), consumer);
      if (state === 'claimed' || state === 'orphaned') return { state, attempt: Number(attempt) };
      return { state: state as 'done' | 'elsewhere' | 'missing' };
    },
    async schedule(tenant, notificationId, deviceId, holder, attempt) {
      return (await commands.heraldMoveMarker(keys.sendMarker(tenant, notificationId, deviceId), heldValue(holder), `retry:${attempt}`)) === 1;
    },
    async defer(tenant, notificationId, deviceId, holder, waitMs) {
      const key = keys.sendMarker(tenant, notificationId, deviceId);
      return (await commands.heraldMoveMarkerKeeping(key, heldValue(holder), 'retry:1', Math.ceil(waitMs) + ttlMs)) === 1;
    },
  };
}
