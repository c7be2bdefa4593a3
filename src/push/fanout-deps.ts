/**
 * What a worker's sends are made with ({@link FanoutDeps}): the stores, markers, retry set,
 * limits, counters, ledger and clock that `fanout.ts`, `push-attempt.ts` and the retry
 * poller share; and which sender a device goes to.
 */
import type { Logger } from '../common/logger.js';
import type { LedgerWriter } from '../ledger/events.js';
import type { PreferenceStore } from '../preferences/store.js';
import type { Breakers } from './breaker.js';
import type { CountsByKind, PushCounters } from './counters.js';
import type { DeadLetters } from './dead-letters.js';
import type { Device, DeviceStore } from './devices.js';
import type { Limiter } from './limiter.js';
import type { PushQueue } from './queue.js';
import type { RetryPolicy } from './retry.js';
import type { RetrySet } from './retry-set.js';
import type { SeenLive } from './seen-live.js';
import type { SendMarkers } from './send-markers.js';
import type { DeviceSender, DeviceSenders } from './senders/types.js';
import type { TopicStore } from './topics.js';

export interface FanoutDeps {
  readonly devices: DeviceStore;
  readonly topics: TopicStore;
  readonly queue: PushQueue;
  readonly deadLetters: DeadLetters;
  readonly seenLive: SeenLive;
  readonly markers: SendMarkers;
  readonly senders: DeviceSenders;
  readonly limiter: Limiter;
  /** The circuit of each destination (not FCM's: see {@link destinationOf}). */
  readonly breakers: Breakers;
  readonly counters: PushCounters;
  /** The same, by device kind and failure reason. */
  readonly byKind: CountsByKind;
  readonly retry: RetryPolicy;
  /** The durable schedule of retries. */
  readonly retries: RetrySet;
  /** Which shard of the push stream (and of the retry sets) a tenant's pushes are on. */
  readonly shardOf: (tenant: string) => number;
  readonly pageSize: number;
  /** Aborted when the worker stops: no new send starts. */
  readonly signal: AbortSignal;
  /** The users' preferences (`preference-gate.ts`); undefined: none enforced. */
  readonly preferences: PreferenceStore | undefined;
  /** Where each step of each device's push is recorded. */
  readonly ledger: LedgerWriter;
  /** The worker's clock, ms since the epoch: the retry schedule's and the ledger's. */
  readonly now: () => number;
  readonly logger: Logger;
}

/** The sender of `device`'s kind, if one is configured. */
export function senderFor(senders: DeviceSenders, device: Device): DeviceSender<Device['kind']> | undefined {
  // each sender only ever gets devices of its own kind
  return senders[device.kind] as DeviceSender<Device['kind']> | undefined;
}
