/**
 * The broker's Lua scripts, defined on a client with ioredis' public `defineCommand`:
 * ioredis sends EVALSHA, falls back to EVAL when the server lacks the script (NOSCRIPT,
 * after a restart or SCRIPT FLUSH) and does the same inside pipelines.
 */
import type { Cluster, Redis, Result } from 'ioredis';

/**
 * KEYS: tenant hash, stream, idempotency key (the tenant hash again when unused).
 * ARGV: channel, frame head (`<report channel>\n<sequence>`), payload, candidate epoch,
 * max length, max age (ms), idempotency window (ms, '' when unused), the publish command
 * (`PUBLISH`, or `SPUBLISH` on a Cluster: the channel shares the keys' slot).
 * Returns {id, receivers, candidate epoch}, or {remembered value, -1, candidate epoch} for a
 * repeated idempotency key. The candidate epoch is unique to each call and comes back as
 * the call's receipt: a reply that carries another one was meant for another command, and
 * the connection is out of step (bytes lost in between; see `redis-liveness.ts`).
 */
const PUBLISH_SCRIPT = `
local windowMs = ARGV[7]
if windowMs ~= '' then
  local seen = redis.call('GET', KEYS[3])
  if seen then
    -- Written again (same value, same expiry) so that the caller's WAIT covers the
    -- first publish's writes too, whichever connection made them: WAIT is documented
    -- to count the calling connection's own writes (Redis 7.0 also waits on a
    -- connection that wrote nothing, but that is not promised).
    redis.call('SET', KEYS[3], seen, 'KEEPTTL')
    return {seen, -1, ARGV[4]}
  end
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
local receivers = redis.call(ARGV[8], ARGV[1], ARGV[2] .. '\\n' .. id .. '\\n' .. ARGV[3])
return {id, receivers, ARGV[4]}
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

/**
 * KEYS: the read-state key. ARGV: channel, frame head, new position (`epoch_ms-seq`),
 * payload, the publish command (`PUBLISH` or `SPUBLISH`). Keeps the new position unless one of the same epoch at or past it is kept,
 * and then PUBLISHes the change with the position as its id.
 * Returns {kept position, 1 if it moved else 0}.
 */
const MARK_READ_SCRIPT = `
local function parse(id)
  local epoch, ms, seq = string.match(id or '', '^(%w+)_(%d+)-(%d+)$')
  return epoch, tonumber(ms), tonumber(seq)
end
local kept = redis.call('GET', KEYS[1])
local keptEpoch, keptMs, keptSeq = parse(kept)
local epoch, ms, seq = parse(ARGV[3])
if keptEpoch and keptEpoch == epoch and (keptMs > ms or (keptMs == ms and keptSeq >= seq)) then
  return {kept, 0}
end
redis.call('SET', KEYS[1], ARGV[3])
redis.call(ARGV[5], ARGV[1], ARGV[2] .. '\\n' .. ARGV[3] .. '\\n' .. ARGV[4])
return {ARGV[3], 1}
`;

/** How a script publishes: classic Pub/Sub on one node, sharded Pub/Sub on a Cluster. */
export type PublishCommand = 'PUBLISH' | 'SPUBLISH';

/** Stream entries as XRANGE returns them: `[id, [field, value, …]]`. */
export type StreamEntries = Array<[string, string[]]>;

/** What `heraldReadAfter` returns: the epoch, then `[exists, max-deleted-entry-id, entries]` per stream. */
export type ReadAfterReply = [string | null, ...Array<[number, string, StreamEntries]>];

declare module 'ioredis' {
  interface RedisCommander<Context> {
    /** The publish script; see `PUBLISH_SCRIPT` in broker/redis-scripts.ts. */
    heraldPublish(
      tenantKey: string,
      stream: string,
      idempotencyKey: string,
      channel: string,
      frameHead: string,
      payload: string,
      epochCandidate: string,
      maxLength: number,
      maxAgeMs: number,
      idempotencyWindowMs: number | '',
      publishCommand: PublishCommand,
    ): Result<[string, number, string], Context>;
    /** The read-state update; see `MARK_READ_SCRIPT` in broker/redis-scripts.ts. */
    heraldMarkRead(key: string, channel: string, frameHead: string, upTo: string, payload: string, publishCommand: PublishCommand): Result<[string, number], Context>;
    /** The history read; see `READ_AFTER_SCRIPT` in broker/redis-scripts.ts. */
    heraldReadAfter(numberOfKeys: number, ...keysThenArgs: Array<string | number>): Result<ReadAfterReply, Context>;
  }
}

/** Defines Herald's scripts as commands of `client` (again, harmlessly, on a client that has them). */
export function defineScripts(client: Redis | Cluster): void {
  client.defineCommand('heraldPublish', { numberOfKeys: 3, lua: PUBLISH_SCRIPT });
  client.defineCommand('heraldMarkRead', { numberOfKeys: 1, lua: MARK_READ_SCRIPT });
  // The number of keys varies with the subscriber's streams: given first on each call.
  client.defineCommand('heraldReadAfter', { lua: READ_AFTER_SCRIPT });
}
