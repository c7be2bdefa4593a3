/**
 * What a push worker is made of and what it tells: its options (each `PUSH_*` setting it
 * takes), its load and lag, and the {@link PushWorker} itself (`worker.ts` makes one).
 */
import type { Logger } from '../common/logger.js';
import type { LedgerWriter } from '../ledger/events.js';
import type { PreferenceStore } from '../preferences/store.js';
import type { PushLoad } from '../common/push-metrics.js';
import type { Redis } from 'ioredis';
import type { BlockingConnection } from '../redis/blocking.js';
import type { RedisClient } from '../redis/connect.js';
import type { CircuitState } from './breaker.js';
import type { CountsByKind, PushCounters } from './counters.js';
import type { DeadLetters } from './dead-letters.js';
import type { DeviceStore } from './devices.js';
import type { PushKeys } from './keys.js';
import type { PushQueue } from './queue.js';
import type { RetryLag } from './retry-set.js';
import type { SeenLive } from './seen-live.js';
import type { DeviceSenders } from './senders/types.js';
import type { TopicStore } from './topics.js';

export interface PushWorkerOptions {
  /**
   * A client for commands, ready before `start` (Herald's connections have no offline
   * queue): one node, Sentinel or a Cluster. The caller owns it and closes it after `stop`.
   */
  redis: RedisClient;
  /**
   * One more connection per shard of the push stream (`keys.streams`, in that order), each
   * used only for that shard's blocking XREADGROUP (a blocked connection serves no other
   * command): a `Redis`, or one that follows the shard's master (`connectBlocking`).
   * Their command timeouts must exceed `blockMs`. The caller owns them.
   */
  readers: ReadonlyArray<Redis | BlockingConnection>;
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
   * `PUSH_MAX_ATTEMPTS`: attempts per push before it is dead-lettered (1: no retry); the
   * retries spread over `retryWindowMs` (`retry.ts`).
   * @default 8
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
  /**
   * `PUSH_RETRY_WINDOW_MS`: the time a push's retries spread over, from its first failure:
   * each retry is drawn inside its own step, the steps doubling and together filling the
   * window; never past the notification's `ttl`.
   * @default 1800000 (30 minutes)
   */
  retryWindowMs?: number;
  /**
   * `PUSH_RETRY_MAX_MS`: longest single retry wait, and the longest Retry-After honoured;
   * one asking for longer dead-letters the push at once.
   * @default 1800000 (30 minutes)
   */
  retryMaxMs?: number;
  /** `PUSH_RETRY_POLL_MS`: how often the worker looks for due retries in the retry set, in ms. @default 1000 */
  retryPollMs?: number;
  /**
   * The worker's clock, ms since the epoch: the retry schedule's (compared in Redis with
   * the scores of the retry set) and the ledger's. Tests drive it.
   * @default Date.now
   */
  now?: () => number;
  /** Where each step of each device's push is recorded. @default NO_LEDGER (nothing kept) */
  ledger?: LedgerWriter;
  /**
   * The users' preferences: a category turned off for a kind of device is not pushed to
   * it, quiet hours put pushes off to their end (`preference-gate.ts`); critical
   * notifications pass. @default none: every push is sent
   */
  preferences?: PreferenceStore | undefined;
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
  /**
   * `PUSH_LOG_SUMMARY_MS`: how often the worker logs at info what it did since its last
   * summary (sent, failed, retried, dead-lettered, devices removed, and the stream's lag),
   * when it did anything; 0: never.
   * @default 60000
   */
  summaryMs?: number;
  /** @default console */
  logger?: Logger;
}

export interface PushLag {
  /** Entries added to the stream that no worker has read yet (null when Redis cannot tell after trimming). */
  readonly unread: number | null;
  /** Entries read by a worker and not yet acknowledged. */
  readonly pending: number;
}

/** One shard's backlog, and how long its oldest entries have waited. */
export interface ShardLag extends PushLag {
  /** The shard's stream key. */
  readonly stream: string;
  /** How long ago the oldest entry read but not yet acknowledged was added; null when none is pending. */
  readonly oldestPendingAgeMs: number | null;
  /** How long ago the oldest entry no worker has read yet was added; null when every entry was read. */
  readonly oldestUnreadAgeMs: number | null;
}

/** A circuit not closed, for metrics. */
export interface CircuitReport {
  /** `<tenant> <origin>` (`destinations.ts`). */
  readonly destination: string;
  readonly state: 'open' | 'half_open';
}

export interface PushWorker {
  readonly consumer: string;
  /** Counts of what this worker did; plain integers, read at any time. */
  readonly counters: Readonly<PushCounters>;
  /** The same by device kind, with failures by reason; plain integers. */
  readonly byKind: Readonly<CountsByKind>;
  /** Circuit transitions since start, by the state entered. */
  readonly circuitTransitions: Readonly<Record<CircuitState, number>>;
  /** What it holds and sends now. */
  load(): PushLoad;
  /** Up to `limit` circuits open or half open, the most recently opened first. */
  circuits(limit: number): CircuitReport[];
  /** Creates the consumer group if needed and starts reading. */
  start(): Promise<void>;
  /**
   * Stops reading and claiming retries, lets sends in flight finish, gives back retries
   * not yet sent (due at once, for another worker) and resolves when nothing is left running.
   */
  stop(): Promise<void>;
  /** The stream's backlog, for all workers together. */
  lag(): Promise<PushLag>;
  /** The same per shard, with the ages of the oldest pending and unread entries. */
  shardLags(): Promise<ShardLag[]>;
  /** The retry sets per shard: retries scheduled, and how long the oldest due one has waited. */
  retryLags(): Promise<RetryLag[]>;
}
