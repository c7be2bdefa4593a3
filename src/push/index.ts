/**
 * The push worker as the process entry (`main.ts push`) starts it: senders made from the
 * configuration — the real one where configured; in dry-run, a logging one where not —
 * and a worker that closes them when it stops.
 */
import type { Logger } from '../common/logger.js';
import type { HeraldConfig, PushConfig } from '../config/index.js';
import type { RedisClient } from '../redis/connect.js';
import { createDeadLetters } from './dead-letters.js';
import { createDeviceStore, type DeviceStore } from './devices.js';
import { CLUSTER_PUSH_STREAM_SHARDS, createPushKeys, type PushKeys } from './keys.js';
import { createNetworkPolicy } from './network-policy.js';
import { createPushQueue, type PushQueue } from './queue.js';
import { createSeenLive, type SeenLive } from './seen-live.js';
import { DEVICE_KINDS, type DeviceKind } from './device-address.js';
import { DEVICE_KIND_SPECS, type DeviceKindSpec } from './device-kinds.js';
import { createDryRunSender } from './senders/dry-run.js';
import type { DeviceSender, DeviceSenders } from './senders/types.js';
import { NO_LEDGER, type LedgerWriter } from '../ledger/events.js';
import { createLedgerKeys } from '../ledger/keys.js';
import { createRedisLedger } from '../ledger/redis-ledger.js';
import { createPreferenceKeys } from '../preferences/keys.js';
import { createRedisPreferenceStore } from '../preferences/redis-store.js';
import type { LedgerCounts } from '../ledger/store.js';
import { createTopicStore, type TopicStore } from './topics.js';
import { createPushWorker, type PushWorker, type PushWorkerOptions } from './worker.js';

/**
 * One sender per configured kind. Outside production (dry-run) an unconfigured kind gets
 * a sender that logs what it would send; in production it gets none, and its devices are
 * counted as `skippedUnconfigured`.
 */
export function createPushSenders(push: PushConfig, logger: Logger): DeviceSenders & { close(): Promise<void> } {
  const { dryRun } = push;
  const context = { dryRun, requestTimeoutMs: push.sendTimeoutMs, logger, networkPolicy: createNetworkPolicy({ allowedNetworks: push.allowedNetworks }) };
  const senderOf = <K extends DeviceKind>(kind: K): DeviceSender<K> | undefined => {
    const spec: DeviceKindSpec<K> = DEVICE_KIND_SPECS[kind];
    return spec.createSender(push, context) ?? (dryRun ? createDryRunSender(kind, logger) : undefined);
  };
  const senders: { [K in DeviceKind]?: DeviceSender<K> } = {};
  for (const kind of DEVICE_KINDS) {
    const sender = senderOf(kind);
    if (sender !== undefined) Object.assign(senders, { [kind]: sender });
  }
  return {
    ...senders,
    close: async () => {
      await Promise.all(Object.values(senders).map((sender) => sender.close()));
    },
  };
}

/**
 * The push keys of a deployment: one push stream shard on one node and behind Sentinel
 * (the layout of before), {@link CLUSTER_PUSH_STREAM_SHARDS} on a Cluster. Servers and
 * workers read the same settings, so they agree.
 */
export function pushKeysFor(config: Pick<HeraldConfig, 'channelPrefix'> & Partial<Pick<HeraldConfig, 'redisCluster'>>): PushKeys {
  return createPushKeys(config.channelPrefix, { streamShards: config.redisCluster === undefined ? 1 : CLUSTER_PUSH_STREAM_SHARDS });
}

/** The push queue as the settings make it: WAITing for `REDIS_MIN_REPLICAS_ACKED` replicas. */
function pushQueueFor(config: HeraldConfig, redis: RedisClient, keys: PushKeys): PushQueue {
  return createPushQueue({
    redis,
    keys,
    maxLength: config.push.streamMaxLength,
    minReplicasAcked: config.redisMinReplicasAcked,
    // Half the command timeout, as the broker's: WAIT's answer must come before ioredis gives up.
    waitTimeoutMs: Math.max(1, Math.floor(config.redisCommandTimeoutMs / 2)),
  });
}

export interface PushWorkerFromConfigOptions {
  config: HeraldConfig;
  /** Commands; ready before `start`. */
  redis: RedisClient;
  /** Blocking reads only, one per shard of `pushKeysFor(config).streams`; their command timeouts above 5000 ms (the worker's block). */
  readers: PushWorkerOptions['readers'];
  logger: Logger;
  /** Where the worker's ledger writes are counted (its process's metrics). @default counts nobody reads */
  ledgerCounts?: LedgerCounts | undefined;
}

/**
 * The worker's ledger writer: batched appends on `redis` (`LEDGER_MAX_EVENTS`), or
 * {@link NO_LEDGER} with the ledger off.
 */
export function ledgerFor(config: Pick<HeraldConfig, 'channelPrefix' | 'ledgerMaxEvents'>, redis: RedisClient, logger: Pick<Console, 'warn'>, counts?: LedgerCounts): LedgerWriter {
  if (config.ledgerMaxEvents === 0) return NO_LEDGER;
  return createRedisLedger({ redis, keys: createLedgerKeys(config.channelPrefix), maxEvents: config.ledgerMaxEvents, logger, ...(counts ? { counts } : {}) });
}

/** A worker with every `PUSH_*` setting applied; its `stop` also closes the senders. */
export function createPushWorkerFromConfig(options: PushWorkerFromConfigOptions): PushWorker {
  const { config, redis, readers, logger } = options;
  const push = config.push;
  const keys = pushKeysFor(config);
  const senders = createPushSenders(push, logger);
  const queue = pushQueueFor(config, redis, keys);
  const ledger = ledgerFor(config, redis, logger, options.ledgerCounts);
  const worker = createPushWorker({
    redis,
    readers,
    keys,
    senders,
    devices: deviceStoreFor(config, redis, keys),
    topics: createTopicStore({ redis, keys, maxTopicsPerUser: push.maxTopicsPerUser }),
    queue,
    deadLetters: createDeadLetters({ redis, keys, queue, maxLength: push.deadLetterMaxLength }),
    seenLive: createSeenLive({ redis, keys, ttlMs: push.seenLiveTtlMs }),
    ledger,
    // the store the subscribe servers write, on the same Redis
    preferences: createRedisPreferenceStore({ redis, keys: createPreferenceKeys(config.channelPrefix), maxCategoriesPerUser: config.preferencesMaxCategoriesPerUser }),
    concurrency: push.concurrency,
    tenantConcurrency: push.tenantConcurrency,
    destinationConcurrency: push.destinationConcurrency,
    breakerFailures: push.breakerFailures,
    breakerCooldownMs: push.breakerCooldownMs,
    maxAttempts: push.maxAttempts,
    claimIdleMs: push.claimIdleMs,
    offlineGraceMs: push.offlineGraceMs,
    retryWindowMs: push.retryWindowMs,
    retryPollMs: push.retryPollMs,
    retryMaxMs: push.retryMaxMs,
    fanoutPageSize: push.fanoutPageSize,
    dedupTtlMs: push.dedupTtlMs,
    summaryMs: push.summaryMs,
    logger,
  });
  if (push.dryRun) logger.info('push: dry-run (NODE_ENV is not production): nothing is sent; FCM only validates');
  else {
    const configured = DEVICE_KINDS.filter((kind) => senders[kind] !== undefined);
    if (configured.length === 0) {
      logger.warn('push: no device kind is configured (PUSH_WEBHOOK_SECRET, PUSH_VAPID_*, PUSH_APNS_*, PUSH_FCM_SERVICE_ACCOUNT_FILE): every push is skipped, counted in herald_push_skipped_unconfigured_total');
    } else logger.info(`push: sending to ${configured.join(', ')} devices`);
  }
  return {
    ...worker,
    async stop() {
      await worker.stop();
      await senders.close();
      // The last sends' events, before the caller closes the connection.
      await ledger.flush();
    },
  };
}

/** What the servers use of the push module, on their command connection. */
export interface PushParts {
  readonly devices: DeviceStore;
  readonly topics: TopicStore;
  readonly seenLive: SeenLive;
  readonly queue: PushQueue;
}

/**
 * The device and topic stores and the seen-live marks (subscribe server) and the push
 * queue (publish server), with every `PUSH_*` setting applied; `redis` is the broker's
 * command client (one node, Sentinel or a Cluster).
 */
export function createPushParts(config: HeraldConfig, redis: RedisClient, logger: Pick<Console, 'warn'>): PushParts {
  const push = config.push;
  const keys = pushKeysFor(config);
  return {
    devices: deviceStoreFor(config, redis, keys),
    topics: createTopicStore({ redis, keys, maxTopicsPerUser: push.maxTopicsPerUser }),
    // Marks are written a tenth of a second at a time, or within a quarter of a shorter grace window.
    seenLive: createSeenLive({ redis, keys, ttlMs: push.seenLiveTtlMs, batchMs: Math.min(100, Math.floor(push.offlineGraceMs / 4)), logger }),
    queue: pushQueueFor(config, redis, keys),
  };
}

/** The device store as the settings make it: the subscribe servers register into it, the workers read it. */
function deviceStoreFor(config: HeraldConfig, redis: RedisClient, keys: PushKeys): DeviceStore {
  const push = config.push;
  return createDeviceStore({
    redis,
    keys,
    maxDevicesPerUser: push.maxDevicesPerUser,
    allowInsecureUrls: !config.production,
    networkPolicy: createNetworkPolicy({ allowedNetworks: push.allowedNetworks }),
  });
}
