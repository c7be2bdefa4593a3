/**
 * One entry of the push stream: a notification that may need pushes, and who to push it
 * to. Stored as one JSON field, `e`, and parsed back by {@link decodePushEntry}, which
 * trusts nothing it reads (an entry may have been written by an older or newer Herald).
 */
import { isPushedAudience, type PushedAudience } from '../common/audiences.js';
import { isValidName } from '../names/index.js';
import { assertDeviceId, assertNotificationId } from './keys.js';
import { readPushOptions, type PushOptions } from './options.js';

/** Mirrors `enum PushPolicy` in the schema. */
export type PushPolicy = 'ALWAYS' | 'NEVER' | 'WHEN_OFFLINE';

export const PUSH_POLICIES: readonly PushPolicy[] = ['ALWAYS', 'NEVER', 'WHEN_OFFLINE'];

/** The audiences a push can reach (the audience table's `pushed`). */
export type PushAudience = PushedAudience;

/** Who an entry pushes to. */
export type PushTarget =
  /** One user's devices. */
  | { readonly kind: 'user'; readonly user: string }
  /** Every follower of a topic: the worker that reads it splits it into `followers` pages. */
  | { readonly kind: 'topic'; readonly topic: string }
  /** A page of a topic's followers, written by a worker. */
  | { readonly kind: 'followers'; readonly topic: string; readonly users: readonly string[] }
  /** One device of one user: a dead letter an operator replays. */
  | { readonly kind: 'device'; readonly user: string; readonly deviceId: string };

/** What every push of one notification carries. */
export interface PushNotification {
  /** The notification's id (`<epoch>_<ms>-<seq>`). */
  readonly id: string;
  readonly tenant: string;
  readonly audience: PushAudience;
  /** The user or topic it was sent to. */
  readonly to: string;
  readonly text: string;
  /** Unix seconds. */
  readonly timestamp: number;
  /** The publisher's `sub`. */
  readonly sender: string;
  /** `collapseKey`, `ttl`, `priority`; absent (an entry of an older Herald too): each provider's defaults. */
  readonly options?: PushOptions;
  /** The notification's category, for the user's preferences; absent: none (never muted). */
  readonly category?: string;
  /** Present (true) when it ignores preferences and quiet hours. */
  readonly critical?: true;
}

export interface PushEntry {
  readonly notification: PushNotification;
  /** `NEVER` never enters the stream. */
  readonly policy: 'ALWAYS' | 'WHEN_OFFLINE';
  readonly target: PushTarget;
  /** When the notification was published, ms since the epoch: the offline grace runs from here. */
  readonly queuedAt: number;
  /** An operator's replay: a `dead` send marker no longer stops it. */
  readonly replay?: boolean;
}

/** The stream entry's field list: `e <json>`. */
export function encodePushEntry(entry: PushEntry): string[] {
  return ['e', JSON.stringify(entry)];
}

/**
 * The JSON object in field `name` of a stream entry's fields (`[name, value, …]`), or
 * undefined when there is none or it is not a JSON object.
 */
export function readJsonField(fields: readonly string[], name: string): Record<string, unknown> | undefined {
  const index = fields.indexOf(name);
  const raw = index % 2 === 0 ? fields[index + 1] : undefined;
  if (raw === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return undefined;
  }
  return isObject(value) ? value : undefined;
}

/** Parses a stream entry's fields; undefined if they are not a well-formed entry. */
export function decodePushEntry(fields: readonly string[]): PushEntry | undefined {
  const value = readJsonField(fields, 'e');
  if (value === undefined) return undefined;
  const notification = parsePushNotification(value['notification']);
  const target = parseTarget(value['target']);
  const { policy, queuedAt, replay } = value;
  if (notification === undefined || target === undefined) return undefined;
  if (policy !== 'ALWAYS' && policy !== 'WHEN_OFFLINE') return undefined;
  if (typeof queuedAt !== 'number' || !Number.isFinite(queuedAt)) return undefined;
  return { notification, policy, target, queuedAt, ...(replay === true ? { replay: true } : {}) };
}

/** Parses a stored {@link PushNotification}; undefined if it is not one. */
export function parsePushNotification(value: unknown): PushNotification | undefined {
  if (!isObject(value)) return undefined;
  const { id, tenant, audience, to, text, timestamp, sender } = value;
  if (!validId(id) || !isValidName(tenant) || !isValidName(to)) return undefined;
  if (!isPushedAudience(audience)) return undefined;
  if (typeof text !== 'string' || typeof timestamp !== 'number' || typeof sender !== 'string') return undefined;
  const options = readPushOptions(value['options']);
  const { category, critical } = value;
  return {
    id,
    tenant,
    audience,
    to,
    text,
    timestamp,
    sender,
    ...(options === undefined ? {} : { options }),
    ...(isValidName(category) ? { category } : {}),
    ...(critical === true ? { critical: true as const } : {}),
  };
}

function parseTarget(value: unknown): PushTarget | undefined {
  if (!isObject(value)) return undefined;
  switch (value['kind']) {
    case 'user':
      return isValidName(value['user']) ? { kind: 'user', user: value['user'] } : undefined;
    case 'topic':
      return isValidName(value['topic']) ? { kind: 'topic', topic: value['topic'] } : undefined;
    case 'followers': {
      const { topic, users } = value;
      if (!isValidName(topic) || !Array.isArray(users) || !users.every(isValidName)) return undefined;
      return { kind: 'followers', topic, users };
    }
    case 'device': {
      const { user, deviceId } = value;
      if (!isValidName(user) || !validDeviceId(deviceId)) return undefined;
      return { kind: 'device', user, deviceId };
    }
    default:
      return undefined;
  }
}

function validId(value: unknown): value is string {
  try {
    assertNotificationId(value);
    return true;
  } catch {
    return false;
  }
}

function validDeviceId(value: unknown): value is string {
  try {
    assertDeviceId(value);
    return true;
  } catch {
    return false;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
