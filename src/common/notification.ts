/**
 * The notification as it travels through the broker, shared by both servers: the
 * publish server encodes it once, each subscribe server decodes it once per message.
 */

/** Who a notification is addressed to; mirrors `enum Audience` in schema.graphql. */
export type Audience = 'USER' | 'STORE' | 'COMPANY' | 'TOPIC';

export const AUDIENCES: readonly Audience[] = ['USER', 'STORE', 'COMPANY', 'TOPIC'];

/** What the publish server encodes; the broker assigns the id. */
export interface NotificationBody {
  readonly text: string;
  /** Unix seconds. */
  readonly timestamp: number;
  readonly audience: Audience;
  /** The publisher's `sub` claim. */
  readonly sender: string;
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

/** What a subscription yields. */
export type SubscriptionItem = Notification | HistoryGap;

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
  const { text, timestamp, audience, sender } = value as Record<string, unknown>;
  if (
    typeof text !== 'string' ||
    typeof timestamp !== 'number' ||
    typeof sender !== 'string' ||
    !AUDIENCES.includes(audience as Audience)
  ) {
    return undefined;
  }
  return { id, text, timestamp, audience: audience as Audience, sender };
}
