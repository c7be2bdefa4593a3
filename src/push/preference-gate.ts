/**
 * Where the worker enforces its users' preferences (`src/preferences/decide.ts`): the
 * preferences of an entry's users are read once per entry (one round trip for a page of
 * followers; none for a critical notification or a worker without a store), each device
 * gets a decision by its kind and the worker's clock, and a push not sent now is settled
 * here, holding its send marker:
 *
 * - refused (its category is off for that kind): `skipped` in the ledger with the
 *   decision's reason, counted `skippedPreference`, its marker `skipped` — a redelivery
 *   of the entry sends nothing;
 * - deferred (the user's quiet hours): its first attempt put in the retry set at the end
 *   of the quiet hours (marker `retry:1`, kept `PUSH_DEDUP_TTL_SECONDS` past that), `retry`
 *   in the ledger with that time, counted `deferredQuietHours`; no attempt is counted. When
 *   it comes due, `retry-send.ts` decides again: the user may have changed their mind.
 *   A deferral past the notification's ttl is skipped instead (marker `skipped`).
 */
import { decidePush, type PushDecision } from '../preferences/decide.js';
import type { CategorySettings, UserPreferences } from '../preferences/preferences.js';
import type { Device } from './devices.js';
import type { PushNotification } from './entry.js';
import type { FanoutDeps } from './fanout-deps.js';
import { recordPush, type AttemptResult } from './push-attempt.js';
import { expiresAtOf } from './retry.js';
import type { MarkerHolder } from './send-markers.js';
import type { PushMessage } from './senders/types.js';

/** One user's preferences and their tenant's defaults, as `decidePush` takes them. */
export interface UserChoices {
  readonly preferences: UserPreferences;
  readonly defaults: CategorySettings;
}

/** A decision that sends nothing now. */
export type HoldBack = Exclude<PushDecision, { readonly action: 'send' }>;

const SEND: PushDecision = { action: 'send' };

/**
 * The preferences of `users` for `notification`, in one read; empty (nothing enforced)
 * when the worker has no store, the notification is critical or there is nobody to push.
 */
export async function choicesOf(deps: Pick<FanoutDeps, 'preferences'>, notification: PushNotification, users: readonly string[]): Promise<ReadonlyMap<string, UserChoices>> {
  if (deps.preferences === undefined || notification.critical === true || users.length === 0) return new Map();
  const { preferences, defaults } = await deps.preferences.readManyWithDefaults(notification.tenant, users);
  return new Map([...preferences].map(([user, mine]) => [user, { preferences: mine, defaults }]));
}

/** What to do now with the push of `notification` to `device`: send it when its user's choices are unknown. */
export function decideFor(deps: Pick<FanoutDeps, 'now'>, notification: PushNotification, choices: UserChoices | undefined, device: Device): PushDecision {
  if (choices === undefined) return SEND;
  return decidePush(choices.preferences, choices.defaults, notification, device.kind, deps.now());
}

/** Reads `message.user`'s preferences again and decides (a deferred push come due). */
export async function decideAgain(deps: Pick<FanoutDeps, 'preferences' | 'now'>, message: PushMessage, device: Device): Promise<PushDecision> {
  const choices = await choicesOf(deps, message.notification, [message.user]);
  return decideFor(deps, message.notification, choices.get(message.user), device);
}

/**
 * Settles a push `decision` holds back, its marker held by `holder`: skipped (refused, or
 * deferred past its ttl), or its first attempt scheduled at the end of the quiet hours.
 * Rejects only when Redis fails.
 */
export async function holdBack(deps: FanoutDeps, message: PushMessage, device: Device, decision: HoldBack, holder: MarkerHolder): Promise<AttemptResult> {
  if (decision.action === 'refuse') return skip(deps, message, device, decision.reason);
  const expiresAt = expiresAtOf(message.notification);
  if (expiresAt !== undefined && decision.untilMs > expiresAt) {
    const [ttl, until] = [new Date(expiresAt).toISOString(), new Date(decision.untilMs).toISOString()];
    return skip(deps, message, device, `not pushed: its ttl passes (${ttl}) within the user's quiet hours (until ${until})`);
  }
  const { tenant, id } = message.notification;
  const now = deps.now();
  if (!(await deps.markers.defer(tenant, id, device.id, holder, Math.max(0, decision.untilMs - now)))) {
    deps.logger.warn(`push: ${id} to device ${device.id} of ${message.user}: its send marker changed hands before its deferral; left to its new holder`);
    return 'settled';
  }
  // firstFailedAt: nothing failed; a deferred first attempt's record keeps its due time there
  await deps.retries.schedule(deps.shardOf(tenant), { notification: message.notification, user: message.user, deviceId: device.id, attempt: 1, firstFailedAt: decision.untilMs }, decision.untilMs);
  deps.counters.deferredQuietHours += 1;
  recordPush(deps, message, device, 'retry', { nextAttemptAt: decision.untilMs, detail: `deferred: quiet hours until ${new Date(decision.untilMs).toISOString()}` });
  return 'scheduled';
}

/** Not pushed, for good: its marker `skipped`, so no redelivery sends it. */
async function skip(deps: FanoutDeps, message: PushMessage, device: Device, detail: string): Promise<AttemptResult> {
  await deps.markers.finish(message.notification.tenant, message.notification.id, device.id, 'skipped');
  deps.counters.skippedPreference += 1;
  recordPush(deps, message, device, 'skipped', { detail });
  return 'settled';
}
