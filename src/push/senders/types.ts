/**
 * What the worker asks of a sender, and what a sender answers. A sender never throws:
 * every failure of the far side is one of the {@link SendOutcome}s, decided at this edge.
 */
import type { Device, DeviceKind } from '../device-address.js';
import type { PushNotification } from '../entry.js';

/** One push: a notification, to one device of one user. */
export interface PushMessage {
  readonly notification: PushNotification;
  /** The user whose device it is. */
  readonly user: string;
}

export type SendOutcome =
  /** Accepted by the push service (or, in dry-run, everything but the send went through). */
  | { readonly outcome: 'sent'; readonly dryRun: boolean }
  /**
   * Worth trying again (429, 5xx, a network error, a timeout), after `retryAfterMs` if the
   * far side said so. `endpointDown`: no answer at all (a network error, a timeout) or a
   * 5xx — what counts toward the destination's circuit breaker; a 429 or a 4xx is an
   * answer, and does not.
   */
  | { readonly outcome: 'retry'; readonly reason: string; readonly retryAfterMs?: number; readonly endpointDown?: boolean }
  /** The device no longer exists (FCM `UNREGISTERED`, Web Push 404/410, webhook 410): remove it. */
  | { readonly outcome: 'gone'; readonly reason: string }
  /** Refused for good (a malformed message, a payload too large, bad credentials). */
  | { readonly outcome: 'failed'; readonly reason: string }
  /**
   * Not attempted: the target's address is one the worker may not connect to (loopback,
   * private, link-local or another special-purpose address not in `PUSH_ALLOWED_NETWORKS`).
   * Final, like `failed`; the device is not removed, so whatever such an address would
   * have answered can never be learnt from the device list.
   */
  | { readonly outcome: 'refused'; readonly reason: string };

export interface DeviceSender<K extends DeviceKind = DeviceKind> {
  readonly kind: K;
  /** Sends `message` to `device`; resolves with the outcome, never rejects. */
  send(message: PushMessage, device: Extract<Device, { kind: K }>): Promise<SendOutcome>;
  /** Closes connections; sends still in flight end with a `retry` outcome. */
  close(): Promise<void>;
}

/** The senders a worker has; a kind without one is skipped (and counted). */
export type DeviceSenders = { readonly [K in DeviceKind]?: DeviceSender<K> };

/**
 * What identifies a push for the app that gets it: the notification's ids and where it was
 * sent. Every provider carries them (a webhook's and Web Push's JSON, APNs' custom keys,
 * FCM's `data`).
 */
export function pushIds(message: PushMessage): { id: string; tenant: string; audience: string; to: string; user: string; sender: string; timestamp: number } {
  const { notification, user } = message;
  return {
    id: notification.id,
    tenant: notification.tenant,
    audience: notification.audience,
    to: notification.to,
    user,
    sender: notification.sender,
    timestamp: notification.timestamp,
  };
}

/** The JSON a webhook receives and a Web Push service worker decrypts. */
export function pushPayload(message: PushMessage): Record<string, string | number> {
  return { type: 'notification', text: message.notification.text, ...pushIds(message) };
}
