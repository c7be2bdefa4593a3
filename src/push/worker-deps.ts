/**
 * What a worker's sends are made with (`FanoutDeps`), from its options: the stores, the
 * send markers, the retry set, the limiter and the circuit breakers, with the defaults
 * `worker-types.ts` documents.
 */
import type { Logger } from '../common/logger.js';
import { NO_LEDGER } from '../ledger/events.js';
import { createBreakers } from './breaker.js';
import { createPushCounters, type CountsByKind } from './counters.js';
import { createDeadLetters } from './dead-letters.js';
import { createDeviceStore } from './devices.js';
import type { FanoutDeps } from './fanout-deps.js';
import { createLimiter } from './limiter.js';
import type { PushQueue } from './queue.js';
import { createRetrySet } from './retry-set.js';
import { createSeenLive } from './seen-live.js';
import { createSendMarkers } from './send-markers.js';
import { createTopicStore } from './topics.js';
import type { PushWorkerOptions } from './worker-types.js';

/** The defaults of the retry settings (`PUSH_RETRY_WINDOW_MS`, `PUSH_RETRY_MAX_MS`, `PUSH_MAX_ATTEMPTS`). */
const RETRY_DEFAULTS = { windowMs: 1_800_000, maxMs: 1_800_000, maxAttempts: 8 } as const;

export interface WorkerParts {
  readonly consumer: string;
  readonly concurrency: number;
  readonly tenantConcurrency: number;
  readonly queue: PushQueue;
  readonly signal: AbortSignal;
  readonly logger: Logger;
}

export function createFanoutDeps(options: PushWorkerOptions, parts: WorkerParts): FanoutDeps {
  const { redis, keys } = options;
  const { logger, queue } = parts;
  const breakerFailures = options.breakerFailures ?? 5;
  const breakerCooldownMs = options.breakerCooldownMs ?? 30_000;
  const breakers = createBreakers({
    failureThreshold: breakerFailures,
    cooldownMs: breakerCooldownMs,
    onTransition: (destination, from, to) => {
      if (to === 'open' && from === 'closed') {
        logger.warn(`push: ${destination} failed ${breakerFailures} sends in a row: its circuit is open, sends to it fail at once (and are retried) for ${breakerCooldownMs} ms`);
      } else if (to === 'closed') {
        logger.info(`push: ${destination} answered again: its circuit is closed`);
      }
    },
  });
  const byKind: CountsByKind = {};
  return {
    devices: options.devices ?? createDeviceStore({ redis, keys }),
    topics: options.topics ?? createTopicStore({ redis, keys }),
    queue,
    deadLetters: options.deadLetters ?? createDeadLetters({ redis, keys, queue }),
    seenLive: options.seenLive ?? createSeenLive({ redis, keys }),
    markers: createSendMarkers(redis, keys, parts.consumer, options.dedupTtlMs ?? 86_400_000),
    senders: options.senders,
    limiter: createLimiter({ concurrency: parts.concurrency, perTenant: parts.tenantConcurrency, perDestination: options.destinationConcurrency ?? 32 }),
    breakers,
    counters: createPushCounters(),
    byKind,
    retry: {
      windowMs: options.retryWindowMs ?? RETRY_DEFAULTS.windowMs,
      maxMs: options.retryMaxMs ?? RETRY_DEFAULTS.maxMs,
      maxAttempts: options.maxAttempts ?? RETRY_DEFAULTS.maxAttempts,
    },
    retries: createRetrySet(redis, keys),
    shardOf: (tenant) => keys.shardOf(tenant),
    pageSize: options.fanoutPageSize ?? 500,
    signal: parts.signal,
    preferences: options.preferences,
    ledger: options.ledger ?? NO_LEDGER,
    now: options.now ?? Date.now,
    logger,
  };
}
