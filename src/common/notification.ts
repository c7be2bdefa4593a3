/**
 * The notification as it travels through the broker, shared by both servers: the
 * publish server encodes it once, each subscribe server decodes it once per message.
 */

import { isAudience, type Audience } from './audiences.js';

export type { Audience } from './audiences.js';

/** What the publish server encodes; the broker assigns the id. */
export interface NotificationBody {
  readonly text: string;
  /** Unix seconds. */
  readonly timestamp: number;
  readonly audience: Audience;
  /** The publisher's `sub` claim. */
  readonly sender: string;
  /**
   * What kind of notification it is, for the user's preferences (a name, like a topic).
   * Absent when the publisher set none: such a notification is never muted, and is
   * encoded exactly as before categories existed.
   */
  readonly category?: string;
  /** Set (only ever `true`) when it ignores preferences and quiet hours. */
  readonly critical?: true;
}

/** A notification as subscribers get it. */
export interface Notification extends NotificationBody {
  /** Its id in the tenant's history, usable as a resume cursor. */
  readonly id: string;
}

/** Told to a resuming subscriber whose missed notifications are not all kept. */
export interface HistoryGap {
  readonly gap: string;
}

/**
 * The user's read position moved: every notification up to `readUpTo` is read. Sent on
 * the user's own channel (never kept in history), so the user's other devices follow.
 */
export interface ReadStateChange {
  readonly readUpTo: string;
}

/** What a subscription yields; only an inbox subscription (`onInboxEvent`) yields read-state changes. */
export type SubscriptionItem = Notification | HistoryGap | ReadStateChange;

/**
 * The body of a read-state change as the broker carries it (its id is the new read
 * position). A notification body always has `text`, so the two never mix up.
 */
export const READ_STATE_PAYLOAD = '{"kind":"read"}';

/** Whether a broker message's body is a read-state change rather than a notification. */
export function isReadStatePayload(raw: string): boolean {
  return raw === READ_STATE_PAYLOAD;
}

export function encodeNotification(notification: NotificationBody): string {
  return JSON.stringify(notification);
}

/** Parses a broker message with its `id`; undefined if it is not a well-formed notification. */
export function decodeNotification(id: string, raw: string): Notification | undefined {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { text, timestamp, audience, sender, category, critical } = value as Record<string, unknown>;
  if (
    typeof text !== 'string' ||
    typeof timestamp !== 'number' ||
    typeof sender !== 'string' ||
    !isAudience(audience)
  ) {
    return undefined;
  }
  // The fan-out path pays one check for a notification without a category or `critical`.
  if (category === undefined && critical === undefined) return { id, text, timestamp, audience, sender };
  return {
    id,
    text,
    timestamp,
    audience,
    sender,
    ...(typeof category === 'string' ? { category } : {}),
    ...(critical === true ? { critical: true as const } : {}),
  };
}
