/**
 * What a worker does with one entry of the push stream: a topic entry becomes pages of
 * followers on the stream (so every worker shares a big topic); a user, followers or
 * device entry becomes one first attempt per device (`push-attempt.ts`), each claimed
 * through its send marker. The entry is done once each of its devices is settled (sent,
 * gone, dead-lettered) or has its next attempt in the retry set (`retry-set.ts`): the
 * entry no longer waits for retries, which the retry poller sends when due.
 *
 * Sends run in parallel up to the worker's limiter (its own, its tenant's and its
 * destination's limits); the walk over an entry's users waits for a free slot before it
 * starts the next send, so an entry of 500 followers holds one waiting slot request, not
 * 500. A send to a destination whose circuit is open fails at once and is retried like
 * any other retryable failure.
 *
 * The users' preferences are read once per entry, after the seen-live check (one round
 * trip for a page of followers), and each device's push decided by its kind: one refused
 * or put off to the end of quiet hours takes no send slot (`preference-gate.ts`).
 */
import { NO_LEDGER } from '../ledger/events.js';
import { destinationOf } from './destinations.js';
import type { Device } from './devices.js';
import type { PushEntry } from './entry.js';
import type { SlotKey } from './limiter.js';
import { senderFor, type FanoutDeps } from './fanout-deps.js';
import { choicesOf, decideFor, holdBack, type HoldBack } from './preference-gate.js';
import { attemptPush, deadLetter, recordPush } from './push-attempt.js';
import type { PushMessage, DeviceSender } from './senders/types.js';

export type { FanoutDeps } from './fanout-deps.js';

/** Which delivery of the entry this is. */
export interface EntryDelivery {
  readonly entryId: string;
  /** Claimed from another worker (or re-read): markers of this entry may be left from before. */
  readonly redelivered: boolean;
}

/**
 * Handles one entry; resolves true when every push it holds is settled or has its next
 * attempt scheduled (the entry may be acknowledged), false when the worker stopped first
 * (it stays pending for another).
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
  const seen = new Set<string>();
  if (entry.policy === 'WHEN_OFFLINE') {
    for (const user of users) if (await deps.seenLive.seen(notification.tenant, notification.id, user)) seen.add(user);
  }
  const choices = await choicesOf(deps, notification, users.filter((user) => !seen.has(user)));
  walk: for (const user of users) {
    const seenLive = seen.has(user);
    if (seenLive) deps.counters.skippedSeenLive += 1;
    // seen live: its devices are listed only to tell the ledger
    if (seenLive && deps.ledger.record === NO_RECORD) continue;
    let devices = await deps.devices.list(notification.tenant, user);
    if (target.kind === 'device') devices = devices.filter((device) => device.id === target.deviceId);
    for (const device of devices) {
      if (seenLive) {
        recordPush(deps, { notification, user }, device, 'skipped', { detail: 'seen live' });
        continue;
      }
      const sender = senderFor(deps.senders, device);
      if (sender === undefined) {
        deps.counters.skippedUnconfigured += 1;
        recordPush(deps, { notification, user }, device, 'skipped', { detail: `no sender configured for ${device.kind}` });
        continue;
      }
      const decision = decideFor(deps, notification, choices.get(user), device);
      if (decision.action !== 'send') {
        sends.push(pushToDevice(deps, entry, delivery, { notification, user }, device, decision));
        continue;
      }
      const slot: SlotKey = { tenant: notification.tenant, destination: destinationOf(notification.tenant, device) };
      const release = await deps.limiter.acquire(slot);
      if (deps.signal.aborted) {
        release();
        complete = false;
        break walk;
      }
      sends.push(pushToDevice(deps, entry, delivery, { notification, user }, device, { sender, slot, release }));
    }
  }
  const settled = await Promise.all(sends);
  return complete && settled.every(Boolean);
}

/** A first attempt to send, in the send slot it holds. */
interface FirstSend {
  readonly sender: DeviceSender<Device['kind']>;
  readonly slot: SlotKey;
  readonly release: () => void;
}

/**
 * One device's first attempt, or the push held back by its user's preferences: true when
 * settled or scheduled, false when abandoned at shutdown. Never rejects.
 */
async function pushToDevice(deps: FanoutDeps, entry: PushEntry, delivery: EntryDelivery, message: PushMessage, device: Device, then: FirstSend | HoldBack): Promise<boolean> {
  const { tenant, id } = message.notification;
  try {
    const claim = await deps.markers.claim(tenant, id, device.id, delivery.entryId, entry.replay === true);
    if (claim === 'scheduled') {
      // in the retry set, unless its worker died between the marker and the set: put it there
      // (a deferred one, `retry:1`, is decided again on its preferences when claimed)
      await deps.retries.ensure(deps.shardOf(tenant), { notification: message.notification, user: message.user, deviceId: device.id, attempt: 2, firstFailedAt: deps.now() }, deps.now());
    }
    if (claim === 'done' || claim === 'elsewhere' || claim === 'scheduled' || (claim === 'orphaned' && !delivery.redelivered)) {
      deps.counters.skippedDuplicate += 1;
      recordPush(deps, message, device, 'skipped', { detail: 'duplicate' });
      return true;
    }
    if (claim === 'orphaned') {
      deps.counters.outcomeUnknown += 1;
      await deadLetter(deps, message, device, 'outcome unknown: the worker sending it stopped mid-send (replay to send it anyway)', 0);
      return true;
    }
    const holder = { entryId: delivery.entryId };
    if ('action' in then) {
      await holdBack(deps, message, device, then, holder);
      return true;
    }
    recordPush(deps, message, device, 'queued', { attempt: 1 });
    await attemptPush(deps, { message, device, sender: then.sender, slot: then.slot, attempt: 1, firstFailedAt: undefined, holder });
    return true;
  } catch (error) {
    deps.logger.error(`push: ${id} to device ${device.id} of ${message.user}: ${error instanceof Error ? error.message : String(error)}`);
    return false;
  } finally {
    if (!('action' in then)) then.release();
  }
}

/** {@link NO_LEDGER}'s record: a worker without a ledger lists no devices only to tell it. */
const NO_RECORD = NO_LEDGER.record;
