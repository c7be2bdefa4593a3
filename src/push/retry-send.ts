/**
 * A retry the poller claimed from the retry set (`retry-poller.ts`): its send marker
 * claimed (the marker names the attempt), its device looked up, a send slot taken through
 * the same limiter and circuit breakers as first attempts, and the attempt made
 * (`push-attempt.ts`). The member leaves the set once settled; an attempt that schedules
 * another moves it; one still waiting for a send slot at shutdown is given back (due now,
 * its marker never taken), so another worker takes it at once.
 *
 * Every retry is decided again on its user's preferences of now (`preference-gate.ts`)
 * before it is sent. Attempt 1 in the retry set is a push deferred by the quiet hours:
 * sent, refused, or (the quiet hours moved) deferred again. A later attempt — a send that
 * failed — is held to the same: one whose category was turned off meanwhile is skipped,
 * and one that comes due inside the quiet hours waits for their end as a deferred push
 * (attempt 1 again, its retry window counted from then: waiting is no attempt).
 *
 * A marker still `inflight:retry-<n>:…` means the worker of attempt `n` died or stalled
 * mid-send (its lease passed): the push is dead-lettered as "outcome unknown", as a
 * re-delivered stream entry's would be, rather than risk a duplicate.
 */
import { destinationOf } from './destinations.js';
import { senderFor, type FanoutDeps } from './fanout-deps.js';
import { decideAgain, holdBack } from './preference-gate.js';
import { attemptPush, deadLetter, recordPush } from './push-attempt.js';
import type { HeldRetry } from './retry-set.js';

/** Handles one claimed retry. Never rejects: when Redis fails, its lease passes and it is claimed again. */
export async function processRetry(deps: FanoutDeps, held: HeldRetry): Promise<void> {
  const record = held.record;
  let release = (): void => undefined;
  try {
    if (record === undefined) {
      deps.logger.warn(`push: dropping unreadable scheduled retry ${held.member}`);
      await deps.retries.settle(held);
      return;
    }
    const { notification, user, deviceId } = record;
    const { tenant, id } = notification;
    const message = { notification, user };
    const device = (await deps.devices.list(tenant, user)).find((one) => one.id === deviceId);
    const sender = device === undefined ? undefined : senderFor(deps.senders, device);
    const slot = { tenant, destination: device === undefined ? undefined : destinationOf(tenant, device) };
    if (device !== undefined && sender !== undefined) {
      // the slot before the marker: a retry waiting for a slot holds no marker, so a worker
      // killed meanwhile leaves it to be sent, not an unknown outcome
      release = await deps.limiter.acquire(slot);
      if (deps.signal.aborted) {
        await deps.retries.release(held, deps.now());
        return;
      }
    }
    const claim = await deps.markers.claimRetry(tenant, id, deviceId);
    const known = device ?? { id: deviceId, kind: 'unknown' };
    if (claim.state === 'done' || claim.state === 'elsewhere') {
      recordPush(deps, message, known, 'skipped', { detail: 'duplicate' });
      deps.counters.skippedDuplicate += 1;
    } else if (claim.state === 'orphaned' || claim.state === 'missing') {
      deps.counters.outcomeUnknown += 1;
      const reason = claim.state === 'orphaned' ? 'the worker sending it stopped mid-send' : 'its send marker expired (PUSH_DEDUP_TTL_SECONDS) while it waited';
      if (device !== undefined) await deadLetter(deps, message, device, `outcome unknown: ${reason} (replay to send it anyway)`, claim.state === 'orphaned' ? claim.attempt : 0);
    } else if (device === undefined) {
      // removed meanwhile (by its user, or a provider's answer to another push)
      await deps.markers.finish(tenant, id, deviceId, 'gone');
      recordPush(deps, message, known, 'skipped', { attempt: claim.attempt, detail: 'device removed before the retry' });
    } else if (sender === undefined) {
      // its kind's sender was taken out of the configuration since the first attempt
      await deadLetter(deps, message, device, `no sender configured for ${device.kind}`, claim.attempt - 1);
    } else {
      const holder = { retry: claim.attempt };
      const deferred = claim.attempt === 1;
      const decision = await decideAgain(deps, message, device);
      if (decision.action !== 'send') {
        if ((await holdBack(deps, message, device, decision, holder)) === 'scheduled') return; // deferred (again)
      } else {
        recordPush(deps, message, device, 'queued', { attempt: claim.attempt });
        const firstFailedAt = deferred ? undefined : record.firstFailedAt;
        const result = await attemptPush(deps, { message, device, sender, slot, attempt: claim.attempt, firstFailedAt, holder });
        if (result === 'scheduled') return; // the member moved to its next due time
      }
    }
    await deps.retries.settle(held);
  } catch (error) {
    deps.logger.error(`push: retry ${held.member} left for another attempt once its lease passes: ${error instanceof Error ? error.message : String(error)}`);
  } finally {
    release();
  }
}
