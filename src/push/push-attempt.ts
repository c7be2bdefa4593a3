/**
 * One attempt of one push to one device, and what it settles: sent, gone (the device
 * removed), dead-lettered (failed for good, refused by the network policy, out of
 * attempts, or past the notification's ttl), or its next attempt scheduled in the retry
 * set (`retry-set.ts`, when per `retry.ts`). First attempts (`fanout.ts`) and retries
 * (`retry-send.ts`) both come here, holding the device's send marker, and each step is
 * recorded in the ledger.
 *
 * Scheduling moves the marker first (`retry:<n>`, only if this attempt still holds it),
 * then writes the retry set: a worker dying in between leaves a marker that says a retry
 * is scheduled, and the entry's next delivery puts the missing retry in the set
 * (`fanout.ts`, `ensure`); a retry's own member is still in the set, claimed again when
 * its lease passes, and the marker tells the attempt.
 */
import { bound } from '../common/logger.js';
import { DETAIL_MAX_LENGTH, type PushEvent } from '../ledger/events.js';
import { countsOf, failureReasonOf } from './counters.js';
import type { Device } from './devices.js';
import type { FanoutDeps } from './fanout-deps.js';
import type { SlotKey } from './limiter.js';
import { expiresAtOf, nextAttempt } from './retry.js';
import type { MarkerHolder } from './send-markers.js';
import type { DeviceSender, PushMessage, SendOutcome } from './senders/types.js';

/** One attempt to make: the device's marker is held by `holder`. */
export interface PushJob {
  readonly message: PushMessage;
  readonly device: Device;
  readonly sender: DeviceSender<Device['kind']>;
  readonly slot: SlotKey;
  /** From 1. */
  readonly attempt: number;
  /** When attempt 1 failed; undefined for attempt 1. */
  readonly firstFailedAt: number | undefined;
  readonly holder: MarkerHolder;
}

/** How an attempt ended: settled for good, or its next attempt scheduled. */
export type AttemptResult = 'settled' | 'scheduled';

/** A ledger event about `device`'s push of `message`, stamped with the worker's clock. */
export function recordPush(
  deps: Pick<FanoutDeps, 'ledger' | 'now'>,
  message: PushMessage,
  device: { readonly id: string; readonly kind: string },
  status: PushEvent['status'],
  fields: Partial<Omit<PushEvent, 'type' | 'at' | 'status' | 'user' | 'device' | 'kind'>> = {},
): void {
  const detail = fields.detail === undefined ? {} : { detail: fields.detail.slice(0, DETAIL_MAX_LENGTH) };
  deps.ledger.record(message.notification.tenant, message.notification.id, {
    type: 'push',
    at: deps.now(),
    status,
    user: message.user,
    device: device.id,
    kind: device.kind,
    ...fields,
    ...detail,
  });
}

/** Writes the dead letter, marks the marker `dead`, counts and records it. */
export async function deadLetter(deps: FanoutDeps, message: PushMessage, device: Device, reason: string, attempts: number): Promise<void> {
  const { tenant, id } = message.notification;
  await deps.deadLetters.add({ notification: message.notification, user: message.user, deviceId: device.id, kind: device.kind, reason, attempts, failedAt: deps.now() });
  await deps.markers.finish(tenant, id, device.id, 'dead');
  deps.counters.deadLettered += 1;
  countsOf(deps.byKind, device.kind).deadLettered += 1;
  recordPush(deps, message, device, 'dead_lettered', { attempt: attempts, detail: reason });
  logOutcome(deps, message, device, 'dead_lettered', attempts, performance.now(), reason);
}

/** Makes `job`'s attempt and settles it. Rejects only when Redis fails. */
export async function attemptPush(deps: FanoutDeps, job: PushJob): Promise<AttemptResult> {
  const { message, device, attempt } = job;
  const { tenant, id } = message.notification;
  const kindCounts = countsOf(deps.byKind, device.kind);
  const startedAt = performance.now();
  const result = await send(deps, job);
  if (result.outcome === 'sent') {
    if (result.dryRun) deps.counters.dryRun += 1;
    else {
      deps.counters.sent += 1;
      kindCounts.sent += 1;
    }
    logOutcome(deps, message, device, result.dryRun ? 'dry_run' : 'sent', attempt, startedAt);
    await deps.markers.finish(tenant, id, device.id, 'sent');
    recordPush(deps, message, device, 'accepted', { attempt, ...(result.dryRun ? { dryRun: true } : {}) });
    return 'settled';
  }
  deps.counters.failed += 1;
  const failure = failureReasonOf(result);
  kindCounts.failed[failure] += 1;
  logOutcome(deps, message, device, failure, attempt, startedAt, result.reason);
  recordPush(deps, message, device, 'failed', { attempt, reason: failure, detail: result.reason });
  if (result.outcome === 'gone') {
    await deps.devices.remove(tenant, message.user, device.id);
    deps.counters.devicesRemoved += 1;
    kindCounts.devicesRemoved += 1;
    await deps.markers.finish(tenant, id, device.id, 'gone');
    recordPush(deps, message, device, 'removed', { attempt, detail: result.reason });
    return 'settled';
  }
  if (result.outcome === 'failed' || result.outcome === 'refused') {
    // refused: never tried, so nothing to retry; the device stays (see SendOutcome)
    if (result.outcome === 'refused') deps.counters.refused += 1;
    await deadLetter(deps, message, device, result.reason, attempt);
    return 'settled';
  }
  const now = deps.now();
  const firstFailedAt = job.firstFailedAt ?? now;
  const next = nextAttempt({ attempt, firstFailedAt, now, retryAfterMs: result.retryAfterMs, expiresAt: expiresAtOf(message.notification) }, deps.retry);
  if (next.kind !== 'retry') {
    const why =
      next.kind === 'exhausted'
        ? `gave up after ${attempt} attempts`
        : next.kind === 'retry_after_too_long'
          ? `Retry-After of ${result.retryAfterMs} ms is past the longest wait`
          : `its ttl passed at ${new Date(next.expiredAt).toISOString()} before the next attempt`;
    await deadLetter(deps, message, device, `${result.reason} (${why})`, attempt);
    return 'settled';
  }
  if (!(await deps.markers.schedule(tenant, id, device.id, job.holder, next.attempt))) {
    // another worker took the marker over (this one stalled past its lease): it decides
    deps.logger.warn(`push: ${id} to device ${device.id} of ${message.user}: its send marker changed hands during attempt ${attempt}; left to its new holder`);
    return 'settled';
  }
  await deps.retries.schedule(deps.shardOf(tenant), { notification: message.notification, user: message.user, deviceId: device.id, attempt: next.attempt, firstFailedAt }, next.at);
  deps.counters.retried += 1;
  kindCounts.retried += 1;
  recordPush(deps, message, device, 'retry', { attempt, nextAttemptAt: next.at });
  return 'scheduled';
}

/** One attempt's outcome at debug, with what identifies it (the line is built only with LOG_LEVEL=debug). */
function logOutcome(deps: FanoutDeps, message: PushMessage, device: Device, outcome: string, attempt: number, startedAt: number, reason?: string): void {
  if (deps.logger.debug === undefined) return;
  const { tenant, id } = message.notification;
  const fields = { tenant, notification: id, device: device.id, kind: device.kind, outcome, attempt, ms: Math.round(performance.now() - startedAt) };
  bound(deps.logger, reason === undefined ? fields : { ...fields, reason }).debug?.(`push: ${outcome}`);
}

/**
 * One attempt through the destination's circuit: failed at once while it is open (a
 * retry, after the rest of its cool-down, within the longest retry wait), else sent, and
 * its outcome recorded.
 */
async function send(deps: FanoutDeps, job: PushJob): Promise<SendOutcome & { readonly circuitOpen?: true }> {
  const { destination } = job.slot;
  if (destination === undefined) return job.sender.send(job.message, job.device);
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
    const result = await job.sender.send(job.message, job.device);
    healthy = !(result.outcome === 'retry' && result.endpointDown === true);
    return result;
  } finally {
    // in finally: a probe never recorded would hold its circuit half open for good
    deps.breakers.record(destination, admission, healthy);
  }
}
