/**
 * Per-notification push options: `collapseKey`, `ttl` and `priority`, as a publisher sets
 * them on `sendNotification` (checked by {@link parsePushOptions}), carried in the push
 * entry, and handed to every provider in its own words (FCM `android.*` and `apns`/`webpush`
 * headers, Web Push `Topic`/`TTL`/`Urgency`, APNs `apns-collapse-id`/`apns-expiration`/
 * `apns-priority`, a webhook's JSON body). An option not set is not sent: each provider's
 * own default applies, as it did before the options existed.
 */
import { InvalidInputError } from '../common/failures.js';

/** Mirrors `enum PushPriority` in the schema. */
export type PushPriority = 'HIGH' | 'NORMAL';

const PUSH_PRIORITIES: readonly PushPriority[] = ['HIGH', 'NORMAL'];

export interface PushOptions {
  /**
   * Pushes with the same key replace each other on a device that has not shown them yet.
   * Base64url characters, 1–32 ({@link COLLAPSE_KEY_PATTERN}).
   */
  readonly collapseKey?: string;
  /** How long a provider may keep the push for an offline device, in seconds; 0: now or never. */
  readonly ttl?: number;
  readonly priority?: PushPriority;
}

/**
 * Up to 32 characters of the URL-safe base64 alphabet: the narrowest of the providers' rules,
 * Web Push's `Topic` header (RFC 8030 §5.4), so one key is valid everywhere (FCM's
 * `collapse_key` and APNs' `apns-collapse-id`, at most 64 bytes, take it as it is).
 */
const COLLAPSE_KEY_PATTERN = /^[A-Za-z0-9_-]{1,32}$/;

/**
 * The longest `ttl`, in seconds: 28 days, FCM's own maximum (`android.ttl`), which Chrome's
 * Web Push service also keeps to; a longer one would be cut or refused by some provider.
 */
export const MAX_TTL_SECONDS = 28 * 24 * 3600;

/**
 * The options of a publisher's request, checked: undefined or null fields are not set.
 * Throws `BAD_USER_INPUT` naming the field.
 */
export function parsePushOptions(input: { readonly collapseKey?: unknown; readonly ttl?: unknown; readonly priority?: unknown }): PushOptions {
  const { collapseKey, ttl, priority } = input;
  if (collapseKey != null && (typeof collapseKey !== 'string' || !COLLAPSE_KEY_PATTERN.test(collapseKey))) {
    throw new InvalidInputError('collapseKey must be 1 to 32 letters, digits, "_" or "-" (the Web Push Topic alphabet)');
  }
  if (ttl != null && !validTtl(ttl)) {
    throw new InvalidInputError(`ttl must be a whole number of seconds from 0 to ${MAX_TTL_SECONDS} (28 days, the longest FCM keeps a message)`);
  }
  if (priority != null && !PUSH_PRIORITIES.includes(priority as PushPriority)) {
    throw new InvalidInputError(`priority must be one of ${PUSH_PRIORITIES.join(', ')}`);
  }
  return {
    ...(collapseKey == null ? {} : { collapseKey: collapseKey as string }),
    ...(ttl == null ? {} : { ttl: ttl as number }),
    ...(priority == null ? {} : { priority: priority as PushPriority }),
  };
}

/**
 * The options stored in an entry, trusting nothing: a field that is not valid is dropped
 * (its provider's default applies), as is a missing object — an entry written by an older
 * Herald has none.
 */
export function readPushOptions(value: unknown): PushOptions | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const { collapseKey, ttl, priority } = value as Record<string, unknown>;
  const options: PushOptions = {
    ...(typeof collapseKey === 'string' && COLLAPSE_KEY_PATTERN.test(collapseKey) ? { collapseKey } : {}),
    ...(validTtl(ttl) ? { ttl } : {}),
    ...(PUSH_PRIORITIES.includes(priority as PushPriority) ? { priority: priority as PushPriority } : {}),
  };
  return hasPushOptions(options) ? options : undefined;
}

export function hasPushOptions(options: PushOptions): boolean {
  return options.collapseKey !== undefined || options.ttl !== undefined || options.priority !== undefined;
}

function validTtl(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= MAX_TTL_SECONDS;
}
