/**
 * Where preferences are enforced, as pure decisions: whether a live subscription shows
 * a notification, and what the push worker does with one push to one device. Neither
 * reads anything: the caller holds the preferences (a subscription caches its user's;
 * the worker reads them with `PreferenceStore.readWithDefaults`).
 */
import type { Channel } from './channels.js';
import { isEnabled, type CategorySettings, type UserPreferences } from './preferences.js';
import { quietUntil } from './quiet-hours.js';

/** What a notification says of itself for preferences. */
export interface Classified {
  readonly category?: string | undefined;
  readonly critical?: boolean | undefined;
}

export type PushDecision =
  | { readonly action: 'send' }
  /** Not pushed: `reason` says which preference, for the ledger (`skipped`, "refused by preference: …"). */
  | { readonly action: 'refuse'; readonly reason: string }
  /** Pushed at `untilMs` (ms since the epoch), the end of the user's quiet hours. */
  | { readonly action: 'defer'; readonly untilMs: number };

const SEND: PushDecision = { action: 'send' };

/**
 * What to do with the push of `notification` to a device of `deviceKind` at `nowMs`:
 * a critical one is sent; one whose category the user (or the tenant's default) turned
 * off for that kind is refused; one in the user's quiet hours waits for their end.
 */
export function decidePush(
  preferences: UserPreferences,
  tenantDefaults: CategorySettings,
  notification: Classified,
  deviceKind: Exclude<Channel, 'IN_APP'>,
  nowMs: number,
): PushDecision {
  if (notification.critical === true) return SEND;
  const { category } = notification;
  if (category !== undefined && !isEnabled(preferences.categories, tenantDefaults, category, deviceKind)) {
    return { action: 'refuse', reason: `refused by preference: category "${category}" is off for ${deviceKind}` };
  }
  const untilMs = preferences.quietHours === undefined ? undefined : quietUntil(preferences.quietHours, nowMs);
  return untilMs === undefined ? SEND : { action: 'defer', untilMs };
}

/** Whether a live subscription shows `notification` to its user (`IN_APP`). */
export function showsInApp(user: CategorySettings, tenantDefaults: CategorySettings, notification: Classified): boolean {
  const { category } = notification;
  return category === undefined || notification.critical === true || isEnabled(user, tenantDefaults, category, 'IN_APP');
}
