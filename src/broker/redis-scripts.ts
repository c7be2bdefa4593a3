/**
 * The broker's Lua scripts, defined on a client with ioredis' public `defineCommand`:
 * ioredis sends EVALSHA, falls back to EVAL when the server lacks the script (NOSCRIPT,
 * after a restart or SCRIPT FLUSH) and does the same inside pipelines.
 */
import type { Cluster, Redis, Result } from 'ioredis';

/**
 * Publishes the notifications of one turn of the publish server's event loop in one call
 * (`redis-publish-batch.ts`); each is what one call once did, in order, its failure its own.
 *
 * KEYS, four per notification: tenant hash, stream, idempotency key, push stream (each of
 * the last two the tenant hash again when unused).
 * ARGV: the call's candidate epoch, max length, max age (ms), the publish command
 * (`PUBLISH`, or `SPUBLISH` on a Cluster: the channel shares the keys' slot), the ledger's
 * TTL (ms); then ten per
 * notification: channel, frame head (`<report channel>\n<sequence>`), payload, idempotency
 * window (ms, '' when unused), the ledger's key prefix ('' for none: the id is put after
 * it; it shares the tenant's hash tag, so its slot), its accepted event's JSON without
 * `at` (added here, from Redis' clock) — the timeline is made with it and the ledger's TTL,
 * unless the Cluster refuses the key (not declared: the tenant's slot migrating), when the
 * publish goes on without it — and the push entry: when to write it ('' never, `always`,
 * `unheard`: when PUBLISH reached no subscribe server), its JSON before and after the id,
 * the push stream's MAXLEN.
 *
 * Returns {candidate epoch, replies}, a reply per notification: {id, receivers, 1 if the
 * push entry was written else 0}, {remembered value, -1, 0} for a repeated idempotency
 * key, or {'', -2, error} when one of its commands failed (the others are not undone,
 * as in any script). The candidate epoch is unique to each call and comes back as the
 * call's receipt: a reply that carries another one was meant for another command, and the
 * connection is out of step (bytes lost in between; see `redis/liveness.ts`).
 */
const PUBLISH_SCRIPT = `
local candidate, maxLength, maxAgeMs, publishCommand, ledgerMaxAgeMs = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local expiredBefore = string.format('(%d', math.max(0, now - tonumber(maxAgeMs)))

local function publish(k, a)
  local tenant, stream, idempotency, pushStream = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local channel, head, payload, windowMs = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  if windowMs ~= '' then
    local seen = redis.call('GET', idempotency)
    if seen then
      -- Written again (same value, same expiry) so that the caller's WAIT covers the
      -- first publish's writes too, whichever connection made them: WAIT is documented
      -- to count the calling connection's own writes (Redis 7.0 also waits on a
      -- connection that wrote nothing, but that is not promised).
      redis.call('SET', idempotency, seen, 'KEEPTTL')
      return {seen, -1, 0}
    end
  end
  local meta = redis.call('HMGET', tenant, 'epoch', 'ms')
  local epoch = meta[1]
  if not epoch then
    redis.call('HSET', tenant, 'epoch', candidate)
    epoch = candidate
  end
  local ms = math.max(now, tonumber(meta[2] or '0'))
  local seq = redis.call('HINCRBY', tenant, 'seq', 1)
  redis.call('HSET', tenant, 'ms', ms)
  local entryId = string.format('%d-%d', ms, seq)
  -- Trimmed with XDEL, not MAXLEN/MINID: only XDEL advances max-deleted-entry-id, which
  -- is how a reader learns that entries after its cursor are gone.
  local excess = redis.call('XLEN', stream) + 1 - maxLength
  if excess > 0 then
    local oldest = redis.call('XRANGE', stream, '-', '+', 'COUNT', math.min(excess, 1000))
    for _, entry in ipairs(oldest) do redis.call('XDEL', stream, entry[1]) end
  end
  local expired = redis.call('XRANGE', stream, '-', expiredBefore, 'COUNT', 1000)
  for _, entry in ipairs(expired) do redis.call('XDEL', stream, entry[1]) end
  redis.call('XADD', stream, entryId, 'n', payload)
  redis.call('PEXPIRE', stream, maxAgeMs)
  local id = epoch .. '_' .. entryId
  if windowMs ~= '' then redis.call('SET', idempotency, id, 'PX', windowMs) end
  if ARGV[a + 4] ~= '' then
    -- Not among KEYS (the id is made here), so a Cluster refuses it while the tenant's slot
    -- migrates: pcall lets the publish go on without its accepted event then.
    local ledger = ARGV[a + 4] .. id
    local made = redis.pcall('RPUSH', ledger, '{"at":' .. now .. ',' .. string.sub(ARGV[a + 5], 2))
    if type(made) == 'number' then redis.call('PEXPIRE', ledger, ledgerMaxAgeMs) end
  end
  local receivers = redis.call(publishCommand, channel, head .. '\\n' .. id .. '\\n' .. payload)
  local when = ARGV[a + 6]
  if when == 'always' or (when == 'unheard' and receivers == 0) then
    redis.call('XADD', pushStream, 'MAXLEN', '~', ARGV[a + 9], '*', 'e', ARGV[a + 7] .. id .. ARGV[a + 8])
    return {id, receivers, 1}
  end
  return {id, receivers, 0}
end

local replies = {}
for n = 0, #KEYS / 4 - 1 do
  local ok, reply = pcall(publish, 4 * n + 1, 6 + 10 * n)
  if not ok then
    reply = {'', -2, type(reply) == 'table' and reply.err or tostring(reply)}
  end
  replies[n + 1] = reply
end
return {candidate, replies}
`;

/**
 * KEYS: tenant hash, then the streams. ARGV: exclusive start entry id, most entries in
 * the page, most bytes of payload in the page.
 * Returns {epoch or nil, {exists, max-deleted-entry-id} per stream, the page (entry id,
 * payload, entry id, payload, …), 1 if more entries may follow the page's last else 0}.
 *
 * The page is the first entries after the start across all the streams, merged here
 * (a heap of the streams' heads) in one call: each stream is read a share of the page
 * at first, and a stream the merge has emptied while it may hold more is read again,
 * twice as much as last time (at most what the page still lacks). However many streams
 * there are and however their entries fall (a store at a time, or each store in turn),
 * a page is full while entries follow, so a resume costs one call per page and the
 * per-stream work of a call is spread over a whole page. A call reads at most
 * `limit + #streams` entries at first and `2 × limit` more: bounded in time and memory
 * by the page. Should the refills reach that budget, the page ends where the merge
 * stopped: everything up to its last entry is read, from every stream.
 */
const READ_AFTER_SCRIPT = `
local limit = tonumber(ARGV[2])
local maxBytes = tonumber(ARGV[3])
local share = math.max(1, math.ceil(limit / math.max(1, #KEYS - 1)))
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function load(cursor, after, count)
  cursor.entries = redis.call('XRANGE', cursor.key, '(' .. after, '+', 'COUNT', count)
  cursor.at = 1
  cursor.asked = count
  cursor.full = #cursor.entries == count
  if #cursor.entries > 0 then cursor.ms, cursor.seq = parse(cursor.entries[1][1]) end
end
local heap = {}
local function before(a, b)
  return a.ms < b.ms or (a.ms == b.ms and a.seq < b.seq)
end
local function up(i)
  while i > 1 do
    local parent = math.floor(i / 2)
    if not before(heap[i], heap[parent]) then return end
    heap[i], heap[parent] = heap[parent], heap[i]
    i = parent
  end
end
local function down(i)
  local n = #heap
  while true do
    local least, left = i, 2 * i
    if left <= n and before(heap[left], heap[least]) then least = left end
    if left + 1 <= n and before(heap[left + 1], heap[least]) then least = left + 1 end
    if least == i then return end
    heap[i], heap[least] = heap[least], heap[i]
    i = least
  end
end
local states = {}
for i = 2, #KEYS do
  local maxDeleted = '0-0'
  local exists = redis.call('EXISTS', KEYS[i])
  if exists == 1 then
    local info = redis.call('XINFO', 'STREAM', KEYS[i])
    for j = 1, #info, 2 do
      if info[j] == 'max-deleted-entry-id' then maxDeleted = info[j + 1] end
    end
    local cursor = { key = KEYS[i] }
    load(cursor, ARGV[1], share)
    if #cursor.entries > 0 then
      heap[#heap + 1] = cursor
      up(#heap)
    end
  end
  states[#states + 1] = { exists, maxDeleted }
end
local page = {}
local emitted, bytes, budget, more = 0, 0, 2 * limit, 0
while #heap > 0 and emitted < limit and bytes < maxBytes do
  local cursor = heap[1]
  local entry = cursor.entries[cursor.at]
  local payload = entry[2][2] or ''
  page[#page + 1] = entry[1]
  page[#page + 1] = payload
  emitted = emitted + 1
  bytes = bytes + #payload
  cursor.at = cursor.at + 1
  if cursor.at > #cursor.entries and cursor.full then
    local count = math.min(2 * cursor.asked, limit - emitted, budget)
    if count < 1 or bytes >= maxBytes then
      more = 1
      break
    end
    budget = budget - count
    load(cursor, entry[1], count)
  end
  if cursor.at <= #cursor.entries then
    cursor.ms, cursor.seq = parse(cursor.entries[cursor.at][1])
    down(1)
  else
    heap[1] = heap[#heap]
    heap[#heap] = nil
    if #heap > 0 then down(1) end
  end
end
if #heap > 0 then more = 1 end
return { redis.call('HGET', KEYS[1], 'epoch'), states, page, more }
`;

/**
 * KEYS: the read-state key, the tenant hash. ARGV: channel, frame head, new position
 * (`epoch_ms-seq`), payload, the publish command (`PUBLISH` or `SPUBLISH`).
 *
 * A position of an epoch the tenant does not have now (a history lost, or made up) is
 * refused: returns {the tenant's epoch or '', -1}, and nothing changes. One past the
 * tenant's newest id is taken as that id: a position in the future would mark every later
 * notification read before it exists, so the user would never see it unread. So is a kept
 * one past it, kept before positions were clamped. Then the new position is kept unless
 * one of the same epoch at or past it is, and the change is PUBLISHed with the position
 * as its id. Returns {kept position, 1 if it moved else 0}.
 */
const MARK_READ_SCRIPT = `
local function parse(id)
  local epoch, ms, seq = string.match(id or '', '^(%w+)_(%d+)-(%d+)$')
  return epoch, tonumber(ms), tonumber(seq)
end
local function past(ams, aseq, bms, bseq)
  return ams > bms or (ams == bms and aseq > bseq)
end
local tenant = redis.call('HMGET', KEYS[2], 'epoch', 'ms', 'seq')
local epoch, ms, seq = parse(ARGV[3])
if not tenant[1] or tenant[1] ~= epoch then return {tenant[1] or '', -1} end
local newestMs, newestSeq = tonumber(tenant[2]), tonumber(tenant[3])
local upTo = ARGV[3]
if past(ms, seq, newestMs, newestSeq) then
  ms, seq = newestMs, newestSeq
  upTo = string.format('%s_%d-%d', epoch, ms, seq)
end
local kept = redis.call('GET', KEYS[1])
local keptEpoch, keptMs, keptSeq = parse(kept)
if keptEpoch == epoch and past(keptMs, keptSeq, newestMs, newestSeq) then
  keptMs, keptSeq = newestMs, newestSeq
  kept = string.format('%s_%d-%d', epoch, keptMs, keptSeq)
  redis.call('SET', KEYS[1], kept)
end
if keptEpoch == epoch and not past(ms, seq, keptMs, keptSeq) then
  return {kept, 0}
end
redis.call('SET', KEYS[1], upTo)
redis.call(ARGV[5], ARGV[1], ARGV[2] .. '\\n' .. upTo .. '\\n' .. ARGV[4])
return {upTo, 1}
`;

/** How a script publishes: classic Pub/Sub on one node, sharded Pub/Sub on a Cluster. */
export type PublishCommand = 'PUBLISH' | 'SPUBLISH';

/**
 * What `heraldPublish` returns: its receipt (the call's candidate epoch) and, per
 * notification, `[id, receivers, 1 if its push entry was written else 0]`,
 * `[remembered value, -1, 0]` for a repeated idempotency key, or `['', -2, error]`.
 */
export type PublishReply = [string, Array<[string, number, number | string]>];

/** Stream entries as XRANGE returns them: `[id, [field, value, …]]`. */
export type StreamEntries = Array<[string, string[]]>;

/**
 * What `heraldReadAfter` returns: the epoch, `[exists, max-deleted-entry-id]` per stream,
 * the page (entry id and payload, in turn) and 1 if more follow it.
 */
export type ReadAfterReply = [string | null, Array<[number, string]>, string[], 0 | 1];

declare module 'ioredis' {
  interface RedisCommander<Context> {
    /**
     * The publish script; see `PUBLISH_SCRIPT` in broker/redis-scripts.ts. The number of
     * keys (four per notification), the keys, then the call's four arguments and ten per
     * notification.
     */
    heraldPublish(numberOfKeys: number, ...keysThenArgs: Array<string | number>): Result<PublishReply, Context>;
    /** The read-state update; see `MARK_READ_SCRIPT` in broker/redis-scripts.ts. */
    heraldMarkRead(
      key: string,
      tenantKey: string,
      channel: string,
      frameHead: string,
      upTo: string,
      payload: string,
      publishCommand: PublishCommand,
    ): Result<[string, number], Context>;
    /** The history read; see `READ_AFTER_SCRIPT` in broker/redis-scripts.ts. KEYS, then the start, the page's entries and bytes. */
    heraldReadAfter(numberOfKeys: number, ...keysThenArgs: Array<string | number>): Result<ReadAfterReply, Context>;
  }
}

/** Defines Herald's scripts as commands of `client` (again, harmlessly, on a client that has them). */
export function defineScripts(client: Redis | Cluster): void {
  // The number of keys varies with the notifications of the call: given first on each call.
  client.defineCommand('heraldPublish', { lua: PUBLISH_SCRIPT });
  client.defineCommand('heraldMarkRead', { numberOfKeys: 2, lua: MARK_READ_SCRIPT });
  // The number of keys varies with the subscriber's streams: given first on each call.
  client.defineCommand('heraldReadAfter', { lua: READ_AFTER_SCRIPT });
}
