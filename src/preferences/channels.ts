/**
 * Where a notification can reach a user: live in the app (`IN_APP`), or pushed to a
 * device of one kind. Mirrors `enum Channel` in the schema; the push channels are named
 * as the device kinds are, so a device's kind is its channel.
 */

export const CHANNELS = ['IN_APP', 'FCM', 'WEB_PUSH', 'WEBHOOK', 'APNS'] as const;
export type Channel = (typeof CHANNELS)[number];

export function isChannel(value: unknown): value is Channel {
  return typeof value === 'string' && (CHANNELS as readonly string[]).includes(value);
}
