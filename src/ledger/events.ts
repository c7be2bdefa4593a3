/**
 * The ledger's vocabulary: what can happen to one notification, as the events of its
 * timeline. The publish path writes `accepted`, each subscribe server `live` (one per
 * server per notification, with its counts), the push worker the `push` events of each
 * device, the read path `read`. Every event carries `at`, ms since the epoch, taken
 * where it happened.
 *
 * An event is small and flat: it is stored as one JSON string, and the whole timeline is
 * read back by `delivery(id)`.
 */

/**
 * Why a push attempt did not deliver, one of a fixed set (also a bounded metrics label):
 * the senders' outcome kinds, and of their retries what the answer was.
 */
export const FAILURE_REASONS = ['unregistered', 'invalid', 'rate_limited', 'timeout', 'provider_error', 'refused', 'circuit_open'] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

/** The transports a live subscription runs on. */
export const LIVE_TRANSPORTS = ['websocket', 'sse', 'grpc'] as const;
export type LiveTransport = (typeof LIVE_TRANSPORTS)[number];

/** The publish server took the notification: stored in history, published live, queued for push. */
export interface AcceptedEvent {
  readonly type: 'accepted';
  readonly at: number;
  /** The publisher's `sub`. */
  readonly publisher: string;
  readonly audience: string;
  /** The user, store, topic or company it was sent to. */
  readonly to: string;
  /** `ALWAYS`, `WHEN_OFFLINE` or `NEVER`. */
  readonly push: string;
}

/** One subscribe server handed the notification to its live subscriptions. */
export interface LiveEvent {
  readonly type: 'live';
  readonly at: number;
  /** The server that delivered (its instance id). */
  readonly server: string;
  /** Subscriptions that took it, on this server. */
  readonly subscriptions: number;
  /** The same, by transport (a transport with none is absent). */
  readonly transports: Partial<Record<LiveTransport, number>>;
  /**
   * The users it reached live here, for the pushable audiences (`USER`, `TOPIC`), at most
   * {@link LIVE_USERS_KEPT} of them: these are the seen-live marks the push worker reads.
   */
  readonly users?: readonly string[];
}

/** How many users a {@link LiveEvent} names at most. */
export const LIVE_USERS_KEPT = 20;

/**
 * What happened to the push of this notification to one device of one user:
 *
 * - `queued`: the worker took the device for a send;
 * - `accepted`: the provider (or webhook) accepted an attempt (`dryRun`: everything but the send);
 * - `failed`: an attempt did not deliver, `reason` classified, `detail` the provider's answer;
 * - `retry`: another attempt is scheduled for `nextAttemptAt` (without `attempt`: the first,
 *   deferred to the end of the user's quiet hours, `detail` "deferred: quiet hours until …");
 * - `removed`: the device is gone (`UNREGISTERED`, 404/410), removed from the user's devices;
 * - `dead_lettered`: given up on (`detail` says why), kept for an operator's replay;
 * - `replayed`: an operator replayed it from the dead letters;
 * - `skipped`: not sent (`detail` says why: seen live, a duplicate, no sender for the kind,
 *   "refused by preference: …", the ttl passing within the user's quiet hours).
 */
export interface PushEvent {
  readonly type: 'push';
  readonly at: number;
  readonly status: PushStatus;
  readonly user: string;
  readonly device: string;
  /** `FCM`, `APNS`, `WEB_PUSH`, `WEBHOOK`. */
  readonly kind: string;
  /** The attempt it is about, from 1. */
  readonly attempt?: number;
  readonly reason?: FailureReason;
  /** The provider's answer or the worker's words, bounded. */
  readonly detail?: string;
  /** For `retry`: when the next attempt is due, ms since the epoch. */
  readonly nextAttemptAt?: number;
  /** For `accepted`: a dry run (nothing left the worker). */
  readonly dryRun?: boolean;
}

export const PUSH_STATUSES = ['queued', 'accepted', 'failed', 'retry', 'removed', 'dead_lettered', 'replayed', 'skipped'] as const;
export type PushStatus = (typeof PUSH_STATUSES)[number];

/** The user's read position passed the notification (`markNotificationsRead`). */
export interface ReadEvent {
  readonly type: 'read';
  readonly at: number;
  readonly user: string;
}

export type LedgerEvent = AcceptedEvent | LiveEvent | PushEvent | ReadEvent;

/** The longest `detail` kept: a provider's answer is cut here. */
export const DETAIL_MAX_LENGTH = 300;

/**
 * Where events are written. `record` never throws and never waits: events are written in
 * batches shortly after, and a failed write is logged (the ledger is an account of
 * delivery, never a condition of it).
 */
export interface LedgerWriter {
  record(tenant: string, notificationId: string, event: LedgerEvent): void;
  /** Writes what waits now; resolves once stored (shutdown, tests). */
  flush(): Promise<void>;
}

/** A writer that keeps nothing (the ledger turned off, or a part that has none). */
export const NO_LEDGER: LedgerWriter = {
  record: () => undefined,
  flush: () => Promise.resolve(),
};
