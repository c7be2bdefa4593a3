/**
 * The ledger in Redis: each notification's timeline is a LIST of event JSON at
 * `LedgerKeys.ledger`, made by the publish script with the accepted event and history's
 * TTL (`broker/redis-scripts.ts`). Everything later only appends to a timeline that
 * exists, so nothing brings back one that expired, and never past `maxEvents`: the first
 * events are kept (the story's start matters most) and the rest counted at
 * `LedgerKeys.dropped`.
 *
 * Events are written in batches, like the seen-live marks: the events of a short window
 * (`batchMs`) go to Redis as one script call per tenant (a tenant's keys share its hash
 * tag: one slot on a Cluster). `record` never waits and never throws; a failed batch is
 * logged and counted, delivery goes on.
 */
import type { RedisClient } from '../redis/connect.js';
import type { LedgerEvent } from './events.js';
import type { LedgerKeys } from './keys.js';
import { parseEvent, type LedgerCounts, type LedgerStore } from './store.js';

export interface RedisLedgerOptions {
  /** A connection for commands (one node, Sentinel or a Cluster). */
  redis: RedisClient;
  keys: LedgerKeys;
  /** Events one notification keeps (`LEDGER_MAX_EVENTS`, at least 1: 0 is no ledger at all). */
  maxEvents: number;
  /**
   * How long an event waits to be written with the others (0: at the end of the event
   * loop's turn); 10,000 events waiting are written at once.
   * @default 100
   */
  batchMs?: number;
  /** Where writes are counted. @default counts nobody reads */
  counts?: LedgerCounts;
  /** Where a batch that could not be written is reported. @default console */
  logger?: Pick<Console, 'warn'>;
}

/**
 * KEYS: pairs of (timeline, dropped counter). ARGV: the bound, then for each pair the
 * number of its events and the events. Appends each pair's events to its timeline if it
 * exists (RPUSHX: one command for up to 1000 of them), and past the bound trims them off again
 * and counts them on the dropped counter, which takes the timeline's TTL. A timeline is
 * never longer than the bound between calls, so what is trimmed is always this call's.
 * Returns {events written, events dropped}.
 */
const APPEND_SCRIPT = `
local max = tonumber(ARGV[1])
local at = 2
local written, dropped = 0, 0
for k = 1, #KEYS, 2 do
  local n = tonumber(ARGV[at])
  -- in slices of 1000: unpack is bounded by Lua's stack
  local len = 0
  for from = 1, n, 1000 do
    len = redis.call('RPUSHX', KEYS[k], unpack(ARGV, at + from, at + math.min(n, from + 999)))
    if len == 0 then break end
  end
  if len > 0 then
    local over = math.max(0, len - max)
    if over > 0 then
      redis.call('LTRIM', KEYS[k], 0, max - 1)
      redis.call('INCRBY', KEYS[k + 1], over)
      local ttl = redis.call('PTTL', KEYS[k])
      if ttl > 0 then redis.call('PEXPIRE', KEYS[k + 1], ttl) end
    end
    written = written + n - over
    dropped = dropped + over
  end
  at = at + n + 1
end
return {written, dropped}`;

/** Arguments per script call: a long batch is split, so Redis is never busy with one for long. */
const MAX_ARGS_PER_CALL = 2000;
/** Events held at most: a window that collects more is written at once. */
const MAX_WAITING_EVENTS = 10_000;

type AppendingRedis = RedisClient & { heraldLedgerAppend(numberOfKeys: number, ...keysAndArgs: Array<string | number>): Promise<[number, number]> };

export function createRedisLedger(options: RedisLedgerOptions): LedgerStore {
  const { keys, maxEvents } = options;
  if (!Number.isInteger(maxEvents) || maxEvents < 1) throw new RangeError('maxEvents must be an integer of at least 1');
  const batchMs = options.batchMs ?? 100;
  const logger = options.logger ?? console;
  const counts = options.counts ?? { ledgerEvents: 0, ledgerWriteFailures: 0 };
  const redis = options.redis as AppendingRedis;
  redis.defineCommand('heraldLedgerAppend', { lua: APPEND_SCRIPT });
  /** Events waiting, by tenant, then by the notification's ledger key (JSON strings, in order). */
  let waiting = new Map<string, Map<string, string[]>>();
  let waitingEvents = 0;
  let scheduled = false;

  const call = (keysPart: string[], argsPart: Array<string | number>): Promise<void> =>
    redis.heraldLedgerAppend(keysPart.length, ...keysPart, maxEvents, ...argsPart).then(
      ([written]) => {
        counts.ledgerEvents += Number(written);
      },
      (error: unknown) => {
        counts.ledgerWriteFailures += 1;
        logger.warn(`herald: could not write ledger events: ${error instanceof Error ? error.message : String(error)}`);
      },
    );

  const write = async (batch: Map<string, Map<string, string[]>>): Promise<void> => {
    const calls: Array<Promise<void>> = [];
    for (const byLedger of batch.values()) {
      let keysPart: string[] = [];
      let argsPart: Array<string | number> = [];
      for (const [key, events] of byLedger) {
        keysPart.push(key, keys.droppedOf(key));
        argsPart.push(events.length, ...events);
        if (argsPart.length >= MAX_ARGS_PER_CALL) {
          calls.push(call(keysPart, argsPart));
          keysPart = [];
          argsPart = [];
        }
      }
      if (keysPart.length > 0) calls.push(call(keysPart, argsPart));
    }
    await Promise.all(calls);
  };
  const flush = (): Promise<void> => {
    scheduled = false;
    const batch = waiting;
    if (batch.size === 0) return Promise.resolve();
    waiting = new Map();
    waitingEvents = 0;
    return write(batch);
  };
  const flushLater = (): void => void flush();

  return {
    maxEvents,
    record(tenant: string, notificationId: string, event: LedgerEvent) {
      let key: string;
      let text: string;
      try {
        // Made (and checked) once, now, so a bad part never spoils a whole batch.
        key = keys.ledger(tenant, notificationId);
        text = JSON.stringify(event);
      } catch (error) {
        logger.warn(`herald: a ledger event was not recorded: ${error instanceof Error ? error.message : String(error)}`);
        return;
      }
      let byId = waiting.get(tenant);
      if (byId === undefined) {
        byId = new Map();
        waiting.set(tenant, byId);
      }
      const events = byId.get(key);
      if (events === undefined) byId.set(key, [text]);
      else events.push(text);
      waitingEvents += 1;
      if (waitingEvents >= MAX_WAITING_EVENTS) {
        void flush();
        return;
      }
      if (scheduled) return;
      scheduled = true;
      if (batchMs === 0) setImmediate(flushLater);
      else setTimeout(flushLater, batchMs).unref();
    },
    flush,
    async read(tenant, notificationId) {
      const [texts, dropped] = await Promise.all([redis.lrange(keys.ledger(tenant, notificationId), 0, -1), redis.get(keys.dropped(tenant, notificationId))]);
      if (texts.length === 0) return undefined;
      return { events: texts.map(parseEvent).filter((event): event is LedgerEvent => event !== undefined), dropped: Number(dropped ?? 0) };
    },
  };
}
