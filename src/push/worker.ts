/**
 * The push worker: reads the push stream through the workers' consumer group, hands each
 * entry to {@link processEntry}, and acknowledges (XACK, then XDEL) an entry only once all
 * its pushes are settled.
 *
 * Any number of workers share one stream. An entry stays in the group's pending list
 * while its worker holds it; the worker re-claims what it holds every third of
 * `claimIdleMs` (XCLAIM JUSTID, which resets the idle time), so only the entries of a
 * worker that died or stalled grow idle, and the others take them over with XAUTOCLAIM.
 * The send markers turn such a second delivery into no duplicate send.
 *
 * `WHEN_OFFLINE` entries are not handled before `offlineGraceMs` after publication: the
 * read loop waits for each in stream order, so the wait delays work without holding any
 * of the worker's slots.
 *
 * One tenant cannot stall every tenant's push: at most `tenantConcurrency` of its entries
 * are worked on at once; the next wait, held (kept alive by the heartbeat), and start as
 * the tenant's earlier ones end. Waiting entries do not count against the room to read:
 * when a read brings the worker past `concurrency` held entries, the newest waiting entry
 * of the tenant with the most waiting is let go unstarted — left pending, claimed back by
 * id as soon as its tenant has room (`admission.ts`), or by any worker once idle for
 * `claimIdleMs`. So another tenant's entry is always read, and nothing is acknowledged
 * that was not done. Sends are limited the same way per
 * tenant and per destination (`limiter.ts`), and each destination has a circuit breaker
 * (`breaker.ts`).
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import type { Logger } from '../common/logger.js';
import { createTenantAdmission, type HeldEntry } from './admission.js';
import { createBreakers, type CircuitState } from './breaker.js';
import { createPushCounters, type PushCounters } from './counters.js';
import { createDeadLetters, type DeadLetters } from './dead-letters.js';
import { createDeviceStore, type DeviceStore } from './devices.js';
import { decodePushEntry, type PushEntry } from './entry.js';
import { processEntry, type FanoutDeps } from './fanout.js';
import type { PushKeys } from './keys.js';
import { createLimiter } from './limiter.js';
import { createPushQueue, ensurePushGroup, type PushQueue } from './queue.js';
import { createSeenLive, type SeenLive } from './seen-live.js';
import { createSendMarkers } from './send-markers.js';
import type { DeviceSenders } from './senders/types.js';
import { createSleeper } from './sleeper.js';
import { createTopicStore, type TopicStore } from './topics.js';

export interface PushWorkerOptions {
  /**
   * A connection for commands, ready before `start` (Herald's connections have no offline
   * queue). The caller owns it and closes it after `stop`.
   */
  redis: Redis;
  /**
   * A second connection, used only for the blocking XREADGROUP (a blocked connection
   * cannot serve other commands). Its command timeout must exceed `blockMs`. The caller
   * owns it.
   */
  reader: Redis;
  keys: PushKeys;
  /** One sender per device kind; devices of a kind without one are skipped and counted. */
  senders: DeviceSenders;
  /** @default a store on `redis` with its defaults */
  devices?: DeviceStore;
  /** @default a store on `redis` with its defaults */
  topics?: TopicStore;
  /** Where topic pages go. @default a queue on `redis` with its defaults */
  queue?: PushQueue;
  /** @default dead letters on `redis` with their defaults */
  deadLetters?: DeadLetters;
  /** @default marks read on `redis` */
  seenLive?: SeenLive;
  /** This worker's name in the consumer group; unique per process. @default `<host>-<pid>-<random>` */
  consumer?: string;
  /**
   * `PUSH_CONCURRENCY`: most sends in flight at once (HTTP/2 streams, webhook POSTs); also
   * the most stream entries the worker holds.
   * @default 256
   */
  concurrency?: number;
  /**
   * `PUSH_TENANT_CONCURRENCY`: most sends in flight for one tenant, and most of its
   * entries worked on at once; the rest of its work waits without holding up other
   * tenants'.
   * @default a quarter of `concurrency` (64 of 256), at least 1
   */
  tenantConcurrency?: number;
  /**
   * `PUSH_DESTINATION_CONCURRENCY`: most sends in flight to one destination — the origin
   * of a webhook URL or Web Push endpoint, within one tenant (FCM has none): the most
   * connections a hanging receiver can hold.
   * @default 32
   */
  destinationConcurrency?: number;
  /**
   * `PUSH_BREAKER_FAILURES`: sends in a row to one destination that got no answer (a
   * network error, a timeout) or a 5xx, after which its circuit opens: sends to it fail
   * at once (and are retried) until a probe after `breakerCooldownMs` gets an answer.
   * @default 5
   */
  breakerFailures?: number;
  /** `PUSH_BREAKER_COOLDOWN_MS`: how long an open circuit fails sends at once before one probe. @default 30000 (ms) */
  breakerCooldownMs?: number;
  /**
   * `PUSH_MAX_ATTEMPTS`: attempts per push before it is dead-lettered (1: no retry).
   * @default 5
   */
  maxAttempts?: number;
  /**
   * `PUSH_CLAIM_IDLE_MS`: an entry untouched this long belongs to a worker that died or
   * stalled, and another worker takes it over. Longer than a send's timeout.
   * @default 30000
   */
  claimIdleMs?: number;
  /**
   * `PUSH_OFFLINE_GRACE_MS`: how long after publication a `WHEN_OFFLINE` entry waits for
   * the subscribe servers' seen-live marks before the worker decides who to push.
   * @default 2000
   */
  offlineGraceMs?: number;
  /** `PUSH_RETRY_BASE_MS`: first retry wait before jitter; doubles per attempt. @default 1000 */
  retryBaseMs?: number;
  /**
   * `PUSH_RETRY_MAX_MS`: longest retry wait; a Retry-After asking for longer dead-letters
   * the push at once.
   * @default 300000 (5 minutes)
   */
  retryMaxMs?: number;
  /** `PUSH_FANOUT_PAGE_SIZE`: followers per page entry a topic is split into. @default 500 */
  fanoutPageSize?: number;
  /**
   * `PUSH_DEDUP_TTL_SECONDS` (here in ms): how long a send marker is kept; a delivery or
   * replay of the same push later than this is sent again.
   * @default 86400000 (24 hours)
   */
  dedupTtlMs?: number;
  /**
   * Longest XREADGROUP block; `stop` unblocks it at once (CLIENT UNBLOCK), so this only
   * bounds how long a lost connection goes unnoticed.
   * @default 5000 (ms)
   */
  blockMs?: number;
  /** @default console */
  logger?: Logger;
}

export interface PushLag {
  /** Entries added to the stream that no worker has read yet (null when Redis cannot tell after trimming). */
  readonly unread: number | null;
  /** Entries read by a worker and not yet acknowledged. */
  readonly pending: number;
}

/** What a worker holds and sends now, for metrics. */
export interface PushLoad {
  /** Sends holding a slot. */
  readonly sendsInFlight: number;
  /** Sends waiting for a slot (their tenant's, their destination's or the worker's). */
  readonly sendsWaiting: number;
  /** Entries this worker holds, waiting ones included. */
  readonly entriesHeld: number;
  /** Entries held but waiting for their tenant's turn. */
  readonly entriesWaiting: number;
  /** Destinations whose circuit is open / half open (its probe not yet answered). */
  readonly circuitsOpen: number;
  readonly circuitsHalfOpen: number;
}

export interface PushWorker {
  readonly consumer: string;
  /** Counts of what this worker did; plain integers, read at any time. */
  readonly counters: Readonly<PushCounters>;
  /** Circuit transitions since start, by the state entered. */
  readonly circuitTransitions: Readonly<Record<CircuitState, number>>;
  /** What it holds and sends now. */
  load(): PushLoad;
  /** Creates the consumer group if needed and starts reading. */
  start(): Promise<void>;
  /**
   * Stops reading, lets sends in flight finish, abandons retry waits (their entries stay
   * pending for another worker) and resolves when nothing is left running.
   */
  stop(): Promise<void>;
  /** The stream's backlog, for all workers together. */
  lag(): Promise<PushLag>;
}

type StreamReply = Array<[string, Array<[string, string[]]>]> | null;
type AutoclaimReply = [string, Array<[string, string[]] | null>, string[]?];

export function createPushWorker(options: PushWorkerOptions): PushWorker {
  const { redis, reader, keys, senders } = options;
  const logger = options.logger ?? console;
  const consumer = options.consumer ?? `${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
  const concurrency = options.concurrency ?? 256;
  const tenantConcurrency = options.tenantConcurrency ?? Math.max(1, Math.floor(concurrency / 4));
  const claimIdleMs = options.claimIdleMs ?? 30_000;
  const offlineGraceMs = options.offlineGraceMs ?? 2000;
  const blockMs = options.blockMs ?? 5000;
  const queue = options.queue ?? createPushQueue({ redis, keys });
  const counters = createPushCounters();
  const abort = new AbortController();
  const sleeper = createSleeper(abort.signal);
  const sleep = (ms: number): Promise<boolean> => sleeper.sleep(ms);
  const limiter = createLimiter({ concurrency, perTenant: tenantConcurrency, perDestination: options.destinationConcurrency ?? 32 });
  const breakerCooldownMs = options.breakerCooldownMs ?? 30_000;
  const breakers = createBreakers({
    failureThreshold: options.breakerFailures ?? 5,
    cooldownMs: breakerCooldownMs,
    onTransition: (destination, from, to) => {
      if (to === 'open' && from === 'closed') {
        logger.warn(`push: ${destination} failed ${options.breakerFailures ?? 5} sends in a row: its circuit is open, sends to it fail at once (and are retried) for ${breakerCooldownMs} ms`);
      } else if (to === 'closed') {
        logger.info(`push: ${destination} answered again: its circuit is closed`);
      }
    },
  });
  const deps: FanoutDeps = {
    devices: options.devices ?? createDeviceStore({ redis, keys }),
    topics: options.topics ?? createTopicStore({ redis, keys }),
    queue,
    deadLetters: options.deadLetters ?? createDeadLetters({ redis, keys, queue }),
    seenLive: options.seenLive ?? createSeenLive({ redis, keys }),
    markers: createSendMarkers(redis, keys, consumer, options.dedupTtlMs ?? 86_400_000),
    senders,
    limiter,
    breakers,
    counters,
    retry: { baseMs: options.retryBaseMs ?? 1000, maxMs: options.retryMaxMs ?? 300_000 },
    maxAttempts: options.maxAttempts ?? 5,
    pageSize: options.fanoutPageSize ?? 500,
    signal: abort.signal,
    sleeper,
    logger,
  };

  /** Entries this worker holds (read or claimed, not yet acknowledged), kept alive by the heartbeat. */
  const held = new Set<string>();
  /** Which held entries run, which wait for their tenant's turn, which were let go. */
  const admission = createTenantAdmission({ perTenant: tenantConcurrency });
  const tasks = new Set<Promise<void>>();
  let roomWaiter: (() => void) | undefined;
  let readerId: number | undefined;
  let loops: Promise<void> | undefined;
  let heartbeat: NodeJS.Timeout | undefined;

  /** Room to read or claim: waiting entries do not count, as they can be let go for others. */
  const room = (): number => concurrency - (held.size - admission.waiting);
  const untilRoom = async (): Promise<void> => {
    while (room() <= 0 && !abort.signal.aborted) {
      await new Promise<void>((resolve) => (roomWaiter = resolve));
    }
  };
  const wakeRoom = (): void => {
    const waiter = roomWaiter;
    roomWaiter = undefined;
    waiter?.();
  };
  abort.signal.addEventListener('abort', wakeRoom);

  const acknowledge = async (id: string): Promise<void> => {
    // XDEL too: the stream then holds only work not yet done, so its bound is a backlog bound
    await redis.multi().xack(keys.stream, keys.group, id).xdel(keys.stream, id).exec();
  };

  const dispatch = (id: string, entry: PushEntry, redelivered: boolean): void => {
    const { tenant } = entry.notification;
    const run = async (): Promise<void> => {
      try {
        if (redelivered && entry.policy === 'WHEN_OFFLINE') {
          // a claimed entry is usually long past its grace; rarely (claim idle < grace) it is not
          const waitMs = entry.queuedAt + offlineGraceMs - Date.now();
          if (waitMs > 0 && !(await sleep(waitMs))) return;
        }
        if (await processEntry(deps, entry, { entryId: id, redelivered })) {
          await acknowledge(id);
          counters.entriesDone += 1;
        }
      } catch (error) {
        logger.error(`push: entry ${id} left for another attempt: ${error instanceof Error ? error.message : String(error)}`);
      } finally {
        held.delete(id);
        const next = admission.finished(tenant);
        if (next !== undefined && !abort.signal.aborted) dispatch(next.id, next.entry, next.redelivered);
        else if (next === undefined && admission.hasRoomFor(tenant)) track(takeBack(tenant));
        wakeRoom();
      }
    };
    track(run());
  };

  /** Keeps `task` (which never rejects) until it ends, so that `stop` waits for it. */
  const track = (task: Promise<void>): void => {
    tasks.add(task);
    void task.then(() => tasks.delete(task));
  };

  /** Starts `held` now, or keeps it waiting while its tenant has its share in progress. */
  const admit = (entry: HeldEntry): void => {
    if (admission.admit(entry) === 'start') dispatch(entry.id, entry.entry, entry.redelivered);
  };

  /**
   * Past `concurrency` held entries, lets go of waiting ones — the newest of the tenant
   * with the most waiting — unacknowledged: they stay pending, taken back by id when their
   * tenant has room ({@link takeBack}), or claimed by any worker once idle for `claimIdleMs`.
   */
  const letGoPastRoom = (): void => {
    while (held.size > concurrency) {
      const given = admission.letGo();
      if (given === undefined) return;
      held.delete(given.id);
      counters.entriesDeferred += 1;
    }
  };

  const takingBack = new Set<string>();
  /**
   * Claims back, by id, entries of `tenant` this worker let go, now that the tenant has
   * room. XCLAIM's min-idle is the time since each was let go: an entry another worker has
   * claimed since is idle for less than that, and is left to it.
   */
  const takeBack = async (tenant: string): Promise<void> => {
    if (takingBack.has(tenant)) return;
    takingBack.add(tenant);
    try {
      while (!abort.signal.aborted && admission.hasRoomFor(tenant) && room() > 0) {
        const letGo = admission.takeBack(tenant, Math.min(tenantConcurrency, room()));
        if (letGo.length === 0) return;
        const claimed = await Promise.all(
          letGo.map(async (given) => {
            // Redis counts its idle time from the last heartbeat before it was let go, so at
            // least this long; another worker can only have claimed it two thirds of the
            // claim idle time (67 ms at the least) after, far past the 10 ms of slack
            const minIdleMs = Math.max(0, Date.now() - given.at - 10);
            const [reply] = (await redis.xclaim(keys.stream, keys.group, consumer, minIdleMs, given.id)) as Array<[string, string[]] | null>;
            return reply === undefined || reply === null ? undefined : { given, fields: reply[1] };
          }),
        );
        for (const taken of claimed) {
          if (abort.signal.aborted) return; // claimed, not started: pending for another worker
          if (taken === undefined || held.has(taken.given.id)) continue;
          held.add(taken.given.id);
          await take(taken.given.id, taken.fields, taken.given.redelivered);
        }
      }
    } catch (error) {
      logger.error(`push: taking back entries of ${tenant} failed (they are claimed once idle): ${error instanceof Error ? error.message : String(error)}`);
    } finally {
      takingBack.delete(tenant);
    }
  };

  /** Parses and dispatches, or drops an unreadable entry (nobody could ever do it). */
  const take = async (id: string, fields: string[], redelivered: boolean): Promise<void> => {
    const entry = decodePushEntry(fields);
    if (entry === undefined) {
      counters.malformed += 1;
      logger.warn(`push: dropping malformed stream entry ${id}`);
      await acknowledge(id).catch(() => undefined);
      held.delete(id);
      return;
    }
    if (!redelivered && entry.policy === 'WHEN_OFFLINE' && entry.target.kind !== 'topic') {
      const waitMs = entry.queuedAt + offlineGraceMs - Date.now();
      if (waitMs > 0 && !(await sleep(waitMs))) return;
    }
    admit({ id, entry, redelivered });
    letGoPastRoom();
  };

  const readLoop = async (): Promise<void> => {
    while (!abort.signal.aborted) {
      await untilRoom();
      if (abort.signal.aborted) return;
      let reply: StreamReply;
      try {
        readerId ??= Number(await reader.client('ID'));
        reply = (await reader.xreadgroup(
          'GROUP', keys.group, consumer, 'COUNT', room(), 'BLOCK', blockMs, 'STREAMS', keys.stream, '>',
        )) as StreamReply;
      } catch (error) {
        if (abort.signal.aborted) return;
        readerId = undefined; // a reconnected reader has a new id
        await recover(error);
        continue;
      }
      for (const [, entries] of reply ?? []) {
        for (const [id] of entries) held.add(id);
        for (const [id, fields] of entries) {
          if (abort.signal.aborted) return; // the rest stay pending: claimed by another worker
          await take(id, fields, false);
        }
      }
    }
  };

  let claimCursor = '0-0';
  const claimLoop = async (): Promise<void> => {
    const intervalMs = Math.max(10, Math.floor(claimIdleMs / 2));
    while (await sleep(intervalMs)) {
      try {
        while (room() > 0 && !abort.signal.aborted) {
          const [next, entries, deleted = []] = (await redis.xautoclaim(
            keys.stream, keys.group, consumer, claimIdleMs, claimCursor, 'COUNT', room(),
          )) as AutoclaimReply;
          claimCursor = next;
          // trimmed from the stream before anyone finished them; XAUTOCLAIM drops them from the pending list
          counters.lost += deleted.length;
          const deferredBefore = counters.entriesDeferred;
          for (const entry of entries) {
            // null: deleted meanwhile; held: its own entry, which a stalled event loop let go idle
            if (entry === null || held.has(entry[0])) continue;
            held.add(entry[0]);
            await take(entry[0], entry[1], true);
          }
          // a page that let entries go again (tenants over their share): the rest wait for the next round
          if (next === '0-0' || counters.entriesDeferred > deferredBefore) break;
        }
      } catch (error) {
        if (!abort.signal.aborted) logger.error(`push: claiming idle entries failed: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  };

  const recover = async (error: unknown): Promise<void> => {
    const message = error instanceof Error ? error.message : String(error);
    if (message.startsWith('NOGROUP')) {
      // the stream was deleted (FLUSHALL, an operator): make it again
      await ensurePushGroup(redis, keys).catch(() => undefined);
      return;
    }
    logger.error(`push: reading the stream failed: ${message}`);
    await sleep(1000);
  };

  const refreshHeld = async (): Promise<void> => {
    if (held.size === 0) return;
    try {
      await redis.xclaim(keys.stream, keys.group, consumer, 0, ...held, 'JUSTID');
    } catch (error) {
      logger.error(`push: heartbeat for held entries failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  };

  return {
    consumer,
    counters,
    circuitTransitions: breakers.transitions,
    load() {
      const circuits = breakers.counts();
      return {
        sendsInFlight: limiter.active,
        sendsWaiting: limiter.waiting,
        entriesHeld: held.size,
        entriesWaiting: admission.waiting,
        circuitsOpen: circuits.open,
        circuitsHalfOpen: circuits.halfOpen,
      };
    },
    async start() {
      if (loops !== undefined) throw new Error('push worker already started');
      await ensurePushGroup(redis, keys);
      heartbeat = setInterval(() => void refreshHeld(), Math.max(10, Math.floor(claimIdleMs / 3)));
      loops = Promise.all([readLoop(), claimLoop()]).then(() => undefined);
    },
    async stop() {
      if (abort.signal.aborted) return;
      abort.abort();
      // repeated: an UNBLOCK that lands just before the XREADGROUP does not end its block
      const unblock = (): void => {
        if (readerId !== undefined) void redis.client('UNBLOCK', readerId).catch(() => undefined);
      };
      unblock();
      const unblocking = setInterval(unblock, 100);
      await loops;
      clearInterval(unblocking);
      while (tasks.size > 0) await Promise.allSettled([...tasks]); // a task ending may start another (its tenant's next)
      clearInterval(heartbeat);
    },
    async lag() {
      const groups = (await redis.xinfo('GROUPS', keys.stream)) as unknown[][];
      for (const group of groups) {
        const fields = new Map<string, unknown>();
        for (let i = 0; i + 1 < group.length; i += 2) fields.set(String(group[i]), group[i + 1]);
        if (fields.get('name') !== keys.group) continue;
        const lag = fields.get('lag');
        return { unread: typeof lag === 'number' ? lag : null, pending: Number(fields.get('pending') ?? 0) };
      }
      return { unread: null, pending: 0 };
    },
  };
}
