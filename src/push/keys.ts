/**
 * The only place a push-related Redis key is made.
 *
 * A tenant's keys carry the `{tenant}` hash tag (`<prefix>:{<tenant>}:push:…`), like its
 * history streams, so a tenant's devices, topics and markers live in one Cluster slot and
 * a MULTI over them is legal. The push stream and the dead-letter stream hold every
 * tenant's entries (each entry names its tenant), so they sit outside any tenant.
 *
 * Every part is validated with the channel module's rules, so no user name, topic or
 * notification id can reach another tenant's keys or another kind of key.
 */
import { assertValidName, InvalidNameError } from '../names/index.js';

/** A notification id as the publish path makes it (`<epoch>_<ms>-<seq>`), or a test's own. */
const NOTIFICATION_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Device ids are made by the device store: base64url, no separator. */
const DEVICE_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export interface PushKeys {
  /** Hash of a user's devices: device id → device JSON. */
  devices(tenant: string, user: string): string;
  /** Set of the topics a user follows. */
  following(tenant: string, user: string): string;
  /** Set of the users following a topic (read with SSCAN). */
  followers(tenant: string, topic: string): string;
  /** Per-(notification, device) send marker: `inflight:<entry id>:<consumer>`, `sent`, `gone` or `dead`. */
  sendMarker(tenant: string, notificationId: string, deviceId: string): string;
  /** Set by a subscribe server when a live subscription of `user` received the notification. */
  seenLive(tenant: string, notificationId: string, user: string): string;
  /** The push stream every worker reads through {@link PushKeys.group}. */
  readonly stream: string;
  /** The consumer group on {@link PushKeys.stream}. */
  readonly group: string;
  /** Sends that failed for good, for an operator to read and replay. */
  readonly deadLetters: string;
}

export function createPushKeys(prefix: string): PushKeys {
  assertValidName('channel prefix', prefix);
  const tenantPart = (tenant: string): string => `${prefix}:{${assertValidName('tenant', tenant)}}:push`;
  return {
    devices: (tenant, user) => `${tenantPart(tenant)}:devices:${assertValidName('user name', user)}`,
    following: (tenant, user) => `${tenantPart(tenant)}:following:${assertValidName('user name', user)}`,
    followers: (tenant, topic) => `${tenantPart(tenant)}:followers:${assertValidName('topic', topic)}`,
    sendMarker: (tenant, notificationId, deviceId) =>
      `${tenantPart(tenant)}:sent:${assertNotificationId(notificationId)}:${assertDeviceId(deviceId)}`,
    seenLive: (tenant, notificationId, user) =>
      `${tenantPart(tenant)}:seen:${assertNotificationId(notificationId)}:${assertValidName('user name', user)}`,
    stream: `${prefix}:push:stream`,
    group: 'push-workers',
    deadLetters: `${prefix}:push:dead`,
  };
}

export function assertNotificationId(value: unknown): string {
  if (typeof value === 'string' && NOTIFICATION_ID_PATTERN.test(value)) return value;
  throw new InvalidNameError('notification id must be 1-128 letters, digits, ".", "_" or "-"');
}

export function assertDeviceId(value: unknown): string {
  if (typeof value === 'string' && DEVICE_ID_PATTERN.test(value)) return value;
  throw new InvalidNameError('device id must be 1-64 base64url characters');
}
