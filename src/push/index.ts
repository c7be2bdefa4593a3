/**
 * The push worker as the process entry (`main.ts push`) starts it: senders made from the
 * configuration — the real one where configured; in dry-run, a logging one where not —
 * and a worker that closes them when it stops.
 */
import type { Redis } from 'ioredis';
import type { Logger } from '../common/logger.js';
import type { HeraldConfig, PushConfig } from '../config/index.js';
import { createDeadLetters } from './dead-letters.js';
import { createDeviceStore, type DeviceStore } from './devices.js';
import { createPushKeys, type PushKeys } from './keys.js';
import { createNetworkPolicy } from './network-policy.js';
import { createPushQueue, type PushQueue } from './queue.js';
import { createSeenLive, type SeenLive } from './seen-live.js';
import { DEVICE_KINDS, type DeviceKind } from './device-address.js';
import { DEVICE_KIND_SPECS, type DeviceKindSpec } from './device-kinds.js';
import { createDryRunSender } from './senders/dry-run.js';
import type { DeviceSender, DeviceSenders } from './senders/types.js';
import { createTopicStore, type TopicStore } from './topics.js';
import { createPushWorker, type PushWorker } from './worker.js';

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

export interface PushWorkerFromConfigOptions {
  config: HeraldConfig;
  /** Commands; ready before `start`. */
  redis: Redis;
  /** Blocking reads only; its command timeout above 5000 ms (the worker's block). */
  reader: Redis;
  logger: Logger;
}

/** A worker with every `PUSH_*` setting applied; its `stop` also closes the senders. */
export function createPushWorkerFromConfig(options: PushWorkerFromConfigOptions): PushWorker {
  const { config, redis, reader, logger } = options;
  const push = config.push;
  const keys = createPushKeys(config.channelPrefix);
  const senders = createPushSenders(push, logger);
  const queue = createPushQueue({ redis, keys, maxLength: push.streamMaxLength });
  const worker = createPushWorker({
    redis,
    reader,
    keys,
    senders,
    devices: deviceStoreFor(config, redis, keys),
    topics: createTopicStore({ redis, keys, maxTopicsPerUser: push.maxTopicsPerUser }),
    queue,
    deadLetters: createDeadLetters({ redis, keys, queue, maxLength: push.deadLetterMaxLength }),
    seenLive: createSeenLive({ redis, keys, ttlMs: push.seenLiveTtlMs }),
    concurrency: push.concurrency,
    tenantConcurrency: push.tenantConcurrency,
    destinationConcurrency: push.destinationConcurrency,
    breakerFailures: push.breakerFailures,
    breakerCooldownMs: push.breakerCooldownMs,
    maxAttempts: push.maxAttempts,
    claimIdleMs: push.claimIdleMs,
    offlineGraceMs: push.offlineGraceMs,
    retryBaseMs: push.retryBaseMs,
    retryMaxMs: push.retryMaxMs,
    fanoutPageSize: push.fanoutPageSize,
    dedupTtlMs: push.dedupTtlMs,
    logger,
  });
  if (push.dryRun) logger.info('push: dry-run (NODE_ENV is not production): nothing is sent; FCM only validates');
  return {
    ...worker,
    async stop() {
      await worker.stop();
      await senders.close();
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
 * queue (publish server), with every `PUSH_*` setting applied; `redis` is a connection
 * for commands.
 */
export function createPushParts(config: HeraldConfig, redis: Redis, logger: Pick<Console, 'warn'>): PushParts {
  const push = config.push;
  const keys = createPushKeys(config.channelPrefix);
  return {
    devices: deviceStoreFor(config, redis, keys),
    topics: createTopicStore({ redis, keys, maxTopicsPerUser: push.maxTopicsPerUser }),
    // Marks are written a tenth of a second at a time, or within a quarter of a shorter grace window.
    seenLive: createSeenLive({ redis, keys, ttlMs: push.seenLiveTtlMs, batchMs: Math.min(100, Math.floor(push.offlineGraceMs / 4)), logger }),
    queue: createPushQueue({ redis, keys, maxLength: push.streamMaxLength }),
  };
}

/** The device store as the settings make it: the subscribe servers register into it, the workers read it. */
function deviceStoreFor(config: HeraldConfig, redis: Redis, keys: PushKeys): DeviceStore {
  const push = config.push;
  return createDeviceStore({
    redis,
    keys,
    maxDevicesPerUser: push.maxDevicesPerUser,
    allowInsecureUrls: !config.production,
    networkPolicy: createNetworkPolicy({ allowedNetworks: push.allowedNetworks }),
  });
}
