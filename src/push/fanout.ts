/**
 * What a worker does with one entry of the push stream: a topic entry becomes pages of
 * followers on the stream (so every worker shares a big topic); a user, followers or
 * device entry becomes one send per device, each claimed through its send marker,
 * retried with backoff, and settled as sent, gone (device removed) or dead-lettered
 * (failed for good, refused by the network policy, or out of attempts).
 *
 * Sends run in parallel up to the worker's limiter (its own, its tenant's and its
 * destination's limits); the walk over an entry's users waits for a free slot before it
 * starts the next send, so an entry of 500 followers holds one waiting slot request, not
 * 500. A send to a destination whose circuit is open fails at once and is retried like
 * any other retryable failure.
 */
import { bound, type Logger } from '../common/logger.js';
import type { Breakers } from './breaker.js';
import { countsOf, failureReasonOf, type CountsByKind, type PushCounters } from './counters.js';
import type { DeadLetters } from './dead-letters.js';
import { destinationOf } from './destinations.js';
import type { Device, DeviceStore } from './devices.js';
import type { PushEntry } from './entry.js';
import type { Limiter, SlotKey } from './limiter.js';
import type { PushQueue } from './queue.js';
import { retryDelayMs, type RetryPolicy } from './retry.js';
import type { SeenLive } from './seen-live.js';
import type { FinalState, SendMarkers } from './send-markers.js';
import type { PushMessage, SendOutcome, DeviceSender, DeviceSenders } from './senders/types.js';
import type { Sleeper } from './sleeper.js';
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
  readonly maxAttempts: number;
  readonly pageSize: number;
  /** Aborted when the worker stops: no new send starts. */
  readonly signal: AbortSignal;
  /** Retry waits, ended when the worker stops. */
  readonly sleeper: Sleeper;
  readonly logger: Logger;
}

/** Which delivery of the entry this is. */
export interface EntryDelivery {
  readonly entryId: string;
  /** Claimed from another worker (or re-read): markers of this entry may be left from before. */
  readonly redelivered: boolean;
}

/**
 * Handles one entry; resolves true when every push it holds is settled (the entry may be
 * acknowledged), false when the worker stopped first (it stays pending for another).
 * Rejects only when Redis fails, and then the entry also stays pending.
 */
export async function processEntry(deps: FanoutDeps, entry: PushEntry, delivery: EntryDelivery): Promise<boolean> {
  const { target, notification } = entry;
  if (target.kind === 'topic') {
    for await (const users of deps.topics.followers(notification.tenant, target.topic, deps.pageSize)) {
      await deps.queue.add({ ...entry, target: { kind: 'followers', topic: target.topic, users } });
    }
    return true;
  }
  const users = target.kind === 'followers' ? target.users : [target.user];
  const sends: Array<Promise<boolean>> = [];
  let complete = true;
  walk: for (const user of users) {
    if (entry.policy === 'WHEN_OFFLINE' && (await deps.seenLive.seen(notification.tenant, notification.id, user))) {
      deps.counters.skippedSeenLive += 1;
      continue;
    }
    let devices = await deps.devices.list(notification.tenant, user);
    if (target.kind === 'device') devices = devices.filter((device) => device.id === target.deviceId);
    for (const device of devices) {
      const sender = senderFor(deps.senders, device);
      if (sender === undefined) {
        deps.counters.skippedUnconfigured += 1;
        continue;
      }
      const slot: SlotKey = { tenant: notification.tenant, destination: destinationOf(notification.tenant, device) };
      const release = await deps.limiter.acquire(slot);
      if (deps.signal.aborted) {
        release();
        complete = false;
        break walk;
      }
      sends.push(pushToDevice(deps, entry, delivery, { notification, user }, device, sender, slot, release));
    }
  }
  const settled = await Promise.all(sends);
  return complete && settled.every(Boolean);
}

function senderFor(senders: DeviceSenders, device: Device): DeviceSender<Device['kind']> | undefined {
  // each sender only ever gets devices of its own kind
  return senders[device.kind] as DeviceSender<Device['kind']> | undefined;
}

/** One device: true when settled, false when abandoned at shutdown. Never rejects. */
async function pushToDevice(
  deps: FanoutDeps,
  entry: PushEntry,
  delivery: EntryDelivery,
  message: PushMessage,
  device: Device,
  sender: DeviceSender<Device['kind']>,
  slot: SlotKey,
  firstRelease: () => void,
): Promise<boolean> {
  let release = firstRelease;
  const { tenant, id } = message.notification;
  const kindCounts = countsOf(deps.byKind, device.kind);
  /** One attempt's outcome at debug, with what identifies it (the line is built only with LOG_LEVEL=debug). */
  const logOutcome = (outcome: string, attempt: number, startedAt: number, reason?: string): void => {
    if (deps.logger.debug === undefined) return;
    const fields = { tenant, notification: id, device: device.id, kind: device.kind, outcome, attempt, ms: Math.round(performance.now() - startedAt) };
    bound(deps.logger, reason === undefined ? fields : { ...fields, reason }).debug?.(`push: ${outcome}`);
  };
  const finish = (state: FinalState): Promise<void> => deps.markers.finish(tenant, id, device.id, state);
  const deadLetter = async (reason: string, attempts: number): Promise<void> => {
    await deps.deadLetters.add({
      notification: message.notification,
      user: message.user,
      deviceId: device.id,
      kind: device.kind,
      reason,
      attempts,
      failedAt: Date.now(),
    });
    await finish('dead');
    deps.counters.deadLettered += 1;
    kindCounts.deadLettered += 1;
    logOutcome('dead_lettered', attempts, performance.now(), reason);
  };
  try {
    const claim = await deps.markers.claim(tenant, id, device.id, delivery.entryId, entry.replay === true);
    if (claim === 'done' || claim === 'elsewhere' || (claim === 'orphaned' && !delivery.redelivered)) {
      deps.counters.skippedDuplicate += 1;
      return true;
    }
    if (claim === 'orphaned') {
      deps.counters.outcomeUnknown += 1;
      await deadLetter('outcome unknown: the worker sending it stopped mid-send (replay to send it anyway)', 0);
      return true;
    }
    for (let attempt = 1; ; attempt += 1) {
      const startedAt = performance.now();
      const result = await send(deps, slot.destination, message, device, sender);
      if (result.outcome === 'sent') {
        if (result.dryRun) deps.counters.dryRun += 1;
        else {
          deps.counters.sent += 1;
          kindCounts.sent += 1;
        }
        logOutcome(result.dryRun ? 'dry_run' : 'sent', attempt, startedAt);
        await finish('sent');
        return true;
      }
      deps.counters.failed += 1;
      const failure = failureReasonOf(result);
      kindCounts.failed[failure] += 1;
      logOutcome(failure, attempt, startedAt, result.reason);
      if (result.outcome === 'gone') {
        await deps.devices.remove(tenant, message.user, device.id);
        deps.counters.devicesRemoved += 1;
        kindCounts.devicesRemoved += 1;
        await finish('gone');
        return true;
      }
      if (result.outcome === 'failed') {
        await deadLetter(result.reason, attempt);
        return true;
      }
      if (result.outcome === 'refused') {
        // never tried, so nothing to retry; the device stays (see SendOutcome)
        deps.counters.refused += 1;
        await deadLetter(result.reason, attempt);
        return true;
      }
      if (attempt >= deps.maxAttempts) {
        await deadLetter(`${result.reason} (gave up after ${attempt} attempts)`, attempt);
        return true;
      }
      const delayMs = retryDelayMs(attempt, result.retryAfterMs, deps.retry);
      if (delayMs === undefined) {
        await deadLetter(`${result.reason}; Retry-After of ${result.retryAfterMs} ms is past the longest wait`, attempt);
        return true;
      }
      deps.counters.retried += 1;
      kindCounts.retried += 1;
      release(); // nobody waits on a slot held by a sleeper
      release = () => undefined;
      if (!(await deps.sleeper.sleep(delayMs))) {
        await deps.markers.release(tenant, id, device.id, delivery.entryId);
        return false;
      }
      release = await deps.limiter.acquire(slot);
      if (deps.signal.aborted) {
        await deps.markers.release(tenant, id, device.id, delivery.entryId);
        return false;
      }
    }
  } catch (error) {
    deps.logger.error(`push: ${message.notification.id} to device ${device.id} of ${message.user}: ${error instanceof Error ? error.message : String(error)}`);
    return false;
  } finally {
    release();
  }
}

/**
 * One attempt through the destination's circuit: failed at once while it is open (a
 * retry, after the rest of its cool-down, within the longest retry wait), else sent, and
 * its outcome recorded.
 */
async function send(
  deps: FanoutDeps,
  destination: string | undefined,
  message: PushMessage,
  device: Device,
  sender: DeviceSender<Device['kind']>,
): Promise<SendOutcome & { readonly circuitOpen?: true }> {
  if (destination === undefined) return sender.send(message, device);
  const admission = deps.breakers.admit(destination);
  if (!admission.allowed) {
    deps.counters.breakerRejected += 1;
    return {
      outcome: 'retry',
      reason: `not sent: the circuit of ${destination} is ${admission.state === 'open' ? 'open' : 'half open, its probe in flight'} after repeated failures`,
      retryAfterMs: Math.min(admission.retryAfterMs, deps.retry.maxMs),
      circuitOpen: true,
    };
  }
  let healthy = false;
  try {
    const result = await sender.send(message, device);
    healthy = !(result.outcome === 'retry' && result.endpointDown === true);
    return result;
  } finally {
    // in finally: a probe never recorded would hold its circuit half open for good
    deps.breakers.record(destination, admission, healthy);
  }
}
