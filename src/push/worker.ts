/**
 * The push worker: reads the push stream through the workers' consumer group, hands each
 * entry to {@link processEntry}, and acknowledges (XACK, then XDEL) an entry only once each
 * of its pushes is settled or has its next attempt in the retry set; its retry poller
 * (`retry-poller.ts`) sends the retries when due, whichever worker scheduled them.
 *
 * Any number of workers share the stream, which is cut into shards (`keys.ts`): a worker
 * reads every shard, each on a blocking reader of its own, and claims on each
 * (`stream-shard.ts`). An entry stays in the group's pending list
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
import { Redis } from 'ioredis';
import { blockingOn } from '../redis/blocking.js';
import { createTenantAdmission, type HeldEntry } from './admission.js';
import { decodePushEntry, type PushEntry } from './entry.js';
import { processEntry } from './fanout.js';
import { createPushQueue } from './queue.js';
import { createRetryPoller } from './retry-poller.js';
import { createSleeper } from './sleeper.js';
import { createStreamShard, type StreamShard } from './stream-shard.js';
import { createSummary } from './summary.js';
import { createFanoutDeps } from './worker-deps.js';
import type { PushLag, PushWorker, PushWorkerOptions } from './worker-types.js';

export type { PushWorker, PushWorkerOptions } from './worker-types.js';

/**
 * An entry as the worker holds it: `<shard>/<stream id>` (two shards may give the same id).
 * The send markers take the stream id alone: a tenant's entries are all on one shard.
 */
type Ref = string;
const refOf = (shard: number, id: string): Ref => `${shard}/${id}`;
function parseRef(ref: Ref): { shard: number; id: string } {
  const slash = ref.indexOf('/');
  return { shard: Number(ref.slice(0, slash)), id: ref.slice(slash + 1) };
}

export function createPushWorker(options: PushWorkerOptions): PushWorker {
  const { redis, readers, keys } = options;
  const logger = options.logger ?? console;
  const consumer = options.consumer ?? `${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
  const concurrency = options.concurrency ?? 256;
  const tenantConcurrency = options.tenantConcurrency ?? Math.max(1, Math.floor(concurrency / 4));
  const claimIdleMs = options.claimIdleMs ?? 30_000;
  const offlineGraceMs = options.offlineGraceMs ?? 2000;
  const blockMs = options.blockMs ?? 5000;
  const queue = options.queue ?? createPushQueue({ redis, keys });
  const shards = keys.streams.map((stream, index): StreamShard => {
    const reader = readers[index];
    if (reader === undefined || readers.length !== keys.streams.length) {
      throw new RangeError(`a push worker needs one reader per shard of the push stream (${keys.streams.length}), got ${readers.length}`);
    }
    return createStreamShard({ stream, group: keys.group, consumer, redis, reader: reader instanceof Redis ? blockingOn(reader) : reader });
  });
  /** The shard a held entry is on, and its id there. */
  const locate = (ref: Ref): { shard: StreamShard; id: string } => {
    const { shard, id } = parseRef(ref);
    const found = shards[shard];
    if (found === undefined) throw new Error(`push: ${ref} names no shard`);
    return { shard: found, id };
  };
  const abort = new AbortController();
  const sleeper = createSleeper(abort.signal);
  const sleep = (ms: number): Promise<boolean> => sleeper.sleep(ms);
  const deps = createFanoutDeps(options, { consumer, concurrency, tenantConcurrency, queue, signal: abort.signal, logger });
  const { counters, byKind, limiter, breakers } = deps;

  /** Entries this worker holds (read or claimed, not yet acknowledged), kept alive by the heartbeat. */
  const held = new Set<Ref>();
  /** Which held entries run, which wait for their tenant's turn, which were let go. */
  const admission = createTenantAdmission({ perTenant: tenantConcurrency });
  const tasks = new Set<Promise<void>>();
  /** The read loops waiting for room (one per shard at most). */
  const roomWaiters = new Set<() => void>();
  let loops: Promise<void> | undefined;
  let heartbeat: NodeJS.Timeout | undefined;
  let summary: NodeJS.Timeout | undefined;

  /** Room to read or claim: waiting entries do not count, as they can be let go for others. */
  const room = (): number => concurrency - (held.size - admission.waiting);
  const untilRoom = async (): Promise<void> => {
    while (room() <= 0 && !abort.signal.aborted) {
      await new Promise<void>((resolve) => roomWaiters.add(resolve));
    }
  };
  const wakeRoom = (): void => {
    const waiters = [...roomWaiters];
    roomWaiters.clear();
    for (const waiter of waiters) waiter();
  };
  abort.signal.addEventListener('abort', wakeRoom);

  const acknowledge = (ref: Ref): Promise<void> => {
    const { shard, id } = locate(ref);
    return shard.acknowledge(id);
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
        if (await processEntry(deps, entry, { entryId: parseRef(id).id, redelivered })) {
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
            const { shard, id } = locate(given.id);
            const fields = await shard.claim(id, minIdleMs);
            return fields === undefined ? undefined : { given, fields };
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

  /**
   * Reads one shard while there is room. Each shard's read asks for its share of the
   * room, so the shards read at once do not together bring in much more than there is.
   */
  const readLoop = async (shard: StreamShard, index: number): Promise<void> => {
    while (!abort.signal.aborted) {
      await untilRoom();
      if (abort.signal.aborted) return;
      let entries;
      try {
        entries = await shard.read(Math.max(1, Math.ceil(room() / shards.length)), blockMs);
      } catch (error) {
        if (abort.signal.aborted) return;
        await recover(shard, error);
        continue;
      }
      for (const [id] of entries) held.add(refOf(index, id));
      for (const [id, fields] of entries) {
        if (abort.signal.aborted) return; // the rest stay pending: claimed by another worker
        await take(refOf(index, id), fields, false);
      }
    }
  };

  /** Takes over, shard after shard, the entries of workers that died or stalled. */
  const claimLoop = async (): Promise<void> => {
    const intervalMs = Math.max(10, Math.floor(claimIdleMs / 2));
    while (await sleep(intervalMs)) {
      for (const [index, shard] of shards.entries()) {
        try {
          while (room() > 0 && !abort.signal.aborted) {
            const { entries, deleted, done } = await shard.claimIdle(claimIdleMs, room());
            // trimmed from the stream before anyone finished them; XAUTOCLAIM drops them from the pending list
            counters.lost += deleted;
            const deferredBefore = counters.entriesDeferred;
            for (const [id, fields] of entries) {
              const ref = refOf(index, id);
              // held: its own entry, which a stalled event loop let go idle
              if (held.has(ref)) continue;
              held.add(ref);
              await take(ref, fields, true);
            }
            // a page that let entries go again (tenants over their share): the rest wait for the next round
            if (done || counters.entriesDeferred > deferredBefore) break;
          }
        } catch (error) {
          if (!abort.signal.aborted) logger.error(`push: claiming idle entries of ${shard.stream} failed: ${error instanceof Error ? error.message : String(error)}`);
        }
      }
    }
  };

  const recover = async (shard: StreamShard, error: unknown): Promise<void> => {
    const message = error instanceof Error ? error.message : String(error);
    if (message.startsWith('NOGROUP')) {
      // the stream was deleted (FLUSHALL, an operator): make it again
      await shard.ensureGroup().catch(() => undefined);
      return;
    }
    logger.error(`push: reading ${shard.stream} failed: ${message}`);
    await sleep(1000);
  };

  /** Keeps what this worker holds from growing idle: one XCLAIM JUSTID per shard. */
  const refreshHeld = async (): Promise<void> => {
    if (held.size === 0) return;
    const ids = shards.map((): string[] => []);
    for (const ref of held) {
      const { shard, id } = parseRef(ref);
      ids[shard]?.push(id);
    }
    await Promise.all(
      shards.map((shard, index) =>
        shard.heartbeat(ids[index] ?? []).catch((error: unknown) => {
          logger.error(`push: heartbeat for held entries of ${shard.stream} failed: ${error instanceof Error ? error.message : String(error)}`);
        }),
      ),
    );
  };

  const lag = async (): Promise<PushLag> => {
    const lags = await Promise.all(shards.map((shard) => shard.lag()));
    return lags.reduce((sum, one) => ({ unread: sum.unread === null || one.unread === null ? null : sum.unread + one.unread, pending: sum.pending + one.pending }), {
      unread: 0 as number | null,
      pending: 0,
    });
  };
  const retryLags = () => deps.retries.lags(deps.now());
  const summarize = createSummary({ counters, logger, lag, retriesPending: async () => (await retryLags()).reduce((sum, one) => sum + one.scheduled, 0) });
  const poller = createRetryPoller({ deps, shards: shards.length, pollMs: options.retryPollMs ?? 1000, leaseMs: claimIdleMs, room: () => concurrency, track, sleeper, logger });

  return {
    consumer,
    counters,
    byKind,
    circuits: (limit) => breakers.notClosed(limit).map(({ destination, state }) => ({ destination, state })),
    shardLags: () => Promise.all(shards.map((shard) => shard.lag())),
    retryLags,
    circuitTransitions: breakers.transitions,
    load() {
      const circuits = breakers.counts();
      return {
        sendsInFlight: limiter.active,
        sendsWaiting: limiter.waiting,
        entriesHeld: held.size,
        entriesWaiting: admission.waiting,
        retriesHeld: poller.held,
        circuitsOpen: circuits.open,
        circuitsHalfOpen: circuits.halfOpen,
      };
    },
    async start() {
      if (loops !== undefined) throw new Error('push worker already started');
      await Promise.all(shards.map((shard) => shard.ensureGroup()));
      heartbeat = setInterval(() => void Promise.all([refreshHeld(), poller.renew()]), Math.max(10, Math.floor(claimIdleMs / 3)));
      const summaryMs = options.summaryMs ?? 60_000;
      if (summaryMs > 0) summary = setInterval(() => void summarize(), summaryMs).unref();
      loops = Promise.all([...shards.map(readLoop), claimLoop(), poller.run()]).then(() => undefined);
    },
    async stop() {
      if (abort.signal.aborted) return;
      abort.abort();
      // repeated: an UNBLOCK that lands just before the XREADGROUP does not end its block
      const unblock = (): void => {
        for (const shard of shards) shard.unblock();
      };
      unblock();
      const unblocking = setInterval(unblock, 100);
      await loops;
      clearInterval(unblocking);
      while (tasks.size > 0) await Promise.allSettled([...tasks]); // a task ending may start another (its tenant's next)
      clearInterval(heartbeat);
      clearInterval(summary);
    },
    lag,
  };
}
