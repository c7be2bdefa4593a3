/**
 * The per-(notification, device) marker that makes a re-delivered entry send nothing
 * twice. Its value says where the push stands:
 *
 * - `inflight:<entry id>:<consumer>` — claimed by that worker for that stream entry
 *   (`SET … NX PX`), which is sending it now or will;
 * - `sent`, `gone` (the device no longer exists) or `dead` (dead-lettered) — done.
 *
 * A worker that finds the marker of the very entry it is processing, left by another
 * delivery of that entry, knows that delivery's worker died or stalled mid-send: the push
 * may or may not have gone out, and it is dead-lettered rather than risk a duplicate.
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
  | 'elsewhere';

export type FinalState = 'sent' | 'gone' | 'dead';

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
if current == 'sent' or current == 'gone' or current == 'dead' then return 'done' end
if string.sub(current, 1, #ARGV[3]) == ARGV[3] then return 'orphaned' end
return 'elsewhere'
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
}

type ClaimCommand = (key: string, value: string, ttlMs: number, prefix: string, replay: string) => Promise<string>;
type ReleaseCommand = (key: string, value: string) => Promise<number>;

export function createSendMarkers(redis: RedisClient, keys: PushKeys, consumer: string, ttlMs: number): SendMarkers {
  if (!('heraldClaimSend' in redis)) {
    redis.defineCommand('heraldClaimSend', { numberOfKeys: 1, lua: CLAIM_SCRIPT });
    redis.defineCommand('heraldReleaseSend', { numberOfKeys: 1, lua: RELEASE_SCRIPT });
  }
  const commands = redis as unknown as { heraldClaimSend: ClaimCommand; heraldReleaseSend: ReleaseCommand };
  const value = (entryId: string): string => `inflight:${entryId}:${consumer}`;
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
  };
}
