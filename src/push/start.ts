/**
 * The push worker as a process runs it (`main.ts push`, and `all`): on connections of its
 * own, made from the same settings as the servers' (one node, Sentinel, Cluster) by
 * `connectRedis` — one client for commands, watched for liveness as the broker's are, and
 * one blocking reader per shard of the push stream (`connectBlocking`).
 */
import type { Logger } from '../common/logger.js';
import type { HeraldConfig } from '../config/index.js';
import { connectBlocking } from '../redis/blocking.js';
import { connectRedis, redisLocation } from '../redis/connect.js';
import { watchRedisLiveness } from '../redis/liveness.js';
import type { CircuitState } from './breaker.js';
import type { CountsByKind, PushCounters } from './counters.js';
import type { LedgerCounts } from '../ledger/store.js';
import { createPushWorkerFromConfig, pushKeysFor } from './index.js';
import type { PushLoad } from '../common/push-metrics.js';
import type { RetryLag } from './retry-set.js';
import type { CircuitReport, ShardLag } from './worker-types.js';

export interface RunningPushWorker {
  /** Its consumer name in the `push-workers` group. */
  readonly consumer: string;
  /** Whether it only logs what it would send (`NODE_ENV` is not production). */
  readonly dryRun: boolean;
  /** What it has done since it started (exported as `herald_push_*_total`). */
  readonly counters: Readonly<PushCounters>;
  /** The same by device kind, failures by reason (exported labelled by `kind`, `reason`). */
  readonly byKind: Readonly<CountsByKind>;
  /** Circuit-breaker transitions since start, by the state entered. */
  readonly circuitTransitions: Readonly<Record<CircuitState, number>>;
  /** What it holds and sends now. */
  load(): PushLoad;
  /** Up to `limit` circuits open or half open, the most recently opened first. */
  circuits(limit: number): CircuitReport[];
  /** The push stream's backlog per shard. */
  shardLags(): Promise<ShardLag[]>;
  /** The retry sets per shard. */
  retryLags(): Promise<RetryLag[]>;
  /** Stops reading, lets the sends in flight finish, then closes its connections. */
  stop(): Promise<void>;
}

/** How long the worker's XREADGROUP blocks (the worker's `blockMs` default). */
const PUSH_BLOCK_MS = 5000;

/** How long start-up waits for Redis before it warns that it is still waiting. */
const READY_WARNING_MS = 5000;

/**
 * Starts the worker once its connections are ready — waiting, with a warning after
 * {@link READY_WARNING_MS}, while Redis is away — since Herald's connections queue nothing
 * while disconnected. The readers block in XREADGROUP for up to {@link PUSH_BLOCK_MS}:
 * their timeouts outlast the block, and they are not PINGed (a PING would wait behind the
 * block); a command is always waiting on them, so ioredis' socketTimeout alone replaces
 * one that goes silent.
 */
export async function startPushWorker(config: HeraldConfig, logger: Logger = console, ledgerCounts?: LedgerCounts): Promise<RunningPushWorker> {
  const location = redisLocation(config);
  if (location === undefined) throw new Error('the push worker needs Redis: REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES');
  const keys = pushKeysFor(config);
  const commands = connectRedis(config, { name: 'herald-push', logger });
  const readers = keys.streams.map((key) => connectBlocking(config, { key, via: commands.client, name: 'herald-push-reader', logger, blockMs: PUSH_BLOCK_MS }));
  const connections = [commands, ...readers];
  const liveness = watchRedisLiveness({ connections: commands.connections, timeoutMs: config.redisCommandTimeoutMs, logger });
  const close = async (): Promise<void> => {
    liveness.close();
    await Promise.all(connections.map((connection) => connection.close()));
  };
  const warning = setTimeout(() => {
    const why = commands.lastError();
    logger.warn(`herald: push worker: Redis at ${location} is not reachable after ${READY_WARNING_MS / 1000} s${why === undefined ? '' : ` (${why})`}: waiting for it`);
  }, READY_WARNING_MS);
  try {
    await Promise.all(connections.map((connection) => connection.ready()));
  } finally {
    clearTimeout(warning);
  }
  const worker = createPushWorkerFromConfig({ config, redis: commands.client, readers, logger, ledgerCounts });
  try {
    await worker.start();
  } catch (error) {
    await close();
    throw error;
  }
  return {
    consumer: worker.consumer,
    dryRun: config.push.dryRun,
    counters: worker.counters,
    byKind: worker.byKind,
    circuitTransitions: worker.circuitTransitions,
    load: () => worker.load(),
    circuits: (limit) => worker.circuits(limit),
    shardLags: () => worker.shardLags(),
    retryLags: () => worker.retryLags(),
    async stop() {
      await worker.stop();
      await close();
    },
  };
}
