/**
 * The only place a push-related Redis key is made.
 *
 * A tenant's keys carry the `{tenant}` hash tag (`<prefix>:{<tenant>}:push:…`), like its
 * history streams, so a tenant's devices, topics and markers live in one Cluster slot and
 * a script or MULTI over them is legal. The push stream and the dead-letter stream hold
 * every tenant's entries (each entry names its tenant), so they sit outside any tenant.
 *
 * The push stream is cut into `streamShards` streams, each its own hash tag, so that on a
 * Cluster the pushes of all tenants are not one master's work. A tenant is always queued
 * on the same shard, so its entries keep their order. One shard (one node, Sentinel) is
 * the stream `<prefix>:push:stream` of before; with more, shard `i` is
 * `<prefix>:push:stream:{<prefix>:push:<i>…}`, its tag chosen so that the shards' slots are
 * spread evenly over the slot range (and so over the masters), and a tenant is queued on
 * the shard whose part of the range holds the tenant's own slot.
 *
 * Every part is validated with the channel module's rules, so no user name, topic or
 * notification id can reach another tenant's keys or another kind of key.
 */
import calculateSlot from 'cluster-key-slot';
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
  /** The push stream's shards, every one read by every worker through {@link PushKeys.group}. */
  readonly streams: readonly string[];
  /** Which of {@link PushKeys.streams} a tenant's entries are queued on (always the same one). */
  shardOf(tenant: string): number;
  /**
   * Per shard of {@link PushKeys.streams} (same order, same hash tag): the sorted set of
   * scheduled retries, member `<tenant>/<notification id>/<device id>`, score its due time
   * (ms since the epoch) or, while a worker holds it, the end of that worker's lease.
   */
  readonly retrySets: readonly string[];
  /** Beside each of {@link PushKeys.retrySets}: the hash of what each scheduled retry sends (member → JSON). */
  readonly retryData: readonly string[];
  /** The consumer group on each of {@link PushKeys.streams}. */
  readonly group: string;
  /** Sends that failed for good, for an operator to read and replay. */
  readonly deadLetters: string;
}

/** Slots in a Redis Cluster. */
const SLOTS = 16384;

export interface PushKeysOptions {
  /**
   * How many streams the push stream is cut into: 1 on one node and behind Sentinel,
   * {@link CLUSTER_PUSH_STREAM_SHARDS} on a Cluster. Every server and worker of a
   * deployment must use the same number. @default 1
   */
  streamShards?: number;
}

/**
 * The push stream's shards on a Cluster: each worker blocks on one reader connection per
 * shard, and three to six masters each get a few.
 */
export const CLUSTER_PUSH_STREAM_SHARDS = 8;

export function createPushKeys(prefix: string, options: PushKeysOptions = {}): PushKeys {
  assertValidName('channel prefix', prefix);
  const shards = options.streamShards ?? 1;
  if (!Number.isInteger(shards) || shards < 1 || shards > 1024) throw new RangeError('streamShards must be an integer from 1 to 1024');
  const streams = shards === 1 ? [`${prefix}:push:stream`] : Array.from({ length: shards }, (_, shard) => `${prefix}:push:stream:{${shardTag(prefix, shard, shards)}}`);
  const tags = Array.from({ length: shards }, (_, shard) => (shards === 1 ? '' : `:{${shardTag(prefix, shard, shards)}}`));
  const tenantPart = (tenant: string): string => `${prefix}:{${assertValidName('tenant', tenant)}}:push`;
  return {
    devices: (tenant, user) => `${tenantPart(tenant)}:devices:${assertValidName('user name', user)}`,
    following: (tenant, user) => `${tenantPart(tenant)}:following:${assertValidName('user name', user)}`,
    followers: (tenant, topic) => `${tenantPart(tenant)}:followers:${assertValidName('topic', topic)}`,
    sendMarker: (tenant, notificationId, deviceId) =>
      `${tenantPart(tenant)}:sent:${assertNotificationId(notificationId)}:${assertDeviceId(deviceId)}`,
    seenLive: (tenant, notificationId, user) =>
      `${tenantPart(tenant)}:seen:${assertNotificationId(notificationId)}:${assertValidName('user name', user)}`,
    streams,
    retrySets: tags.map((tag) => `${prefix}:push:retries${tag}`),
    retryData: tags.map((tag) => `${prefix}:push:retry-data${tag}`),
    shardOf: (tenant) => (shards === 1 ? 0 : Math.floor((calculateSlot(assertValidName('tenant', tenant)) * shards) / SLOTS)),
    group: 'push-workers',
    deadLetters: `${prefix}:push:dead`,
  };
}

/** The first tag `<prefix>:push:<shard>[-<n>]` whose slot lies in the shard's part of the slot range. */
function shardTag(prefix: string, shard: number, shards: number): string {
  const from = Math.ceil((shard * SLOTS) / shards);
  const to = Math.ceil(((shard + 1) * SLOTS) / shards);
  for (let n = 0; ; n++) {
    const tag = n === 0 ? `${prefix}:push:${shard}` : `${prefix}:push:${shard}-${n}`;
    const slot = calculateSlot(tag);
    if (slot >= from && slot < to) return tag;
  }
}

export function assertNotificationId(value: unknown): string {
  if (typeof value === 'string' && NOTIFICATION_ID_PATTERN.test(value)) return value;
  throw new InvalidNameError('notification id must be 1-128 letters, digits, ".", "_" or "-"');
}

export function assertDeviceId(value: unknown): string {
  if (typeof value === 'string' && DEVICE_ID_PATTERN.test(value)) return value;
  throw new InvalidNameError('device id must be 1-64 base64url characters');
}
