/**
 * What the push worker has done since it started, as plain integers a metrics module
 * can read (and export as Prometheus counters) without knowing the worker.
 */
import { FAILURE_REASONS, type FailureReason } from '../ledger/events.js';

export interface PushCounters {
  /** Pushes a push service or webhook accepted. */
  sent: number;
  /** Pushes that went through everything but the send (dry-run). */
  dryRun: number;
  /** Attempts that did not deliver (each 429 of a push retried three times counts three). */
  failed: number;
  /** Attempts scheduled again after a retryable failure. */
  retried: number;
  /** Attempts failed at once, without a send, because their destination's circuit was open (each also counts as `failed`). */
  breakerRejected: number;
  /** Pushes given up on and written to the dead-letter stream. */
  deadLettered: number;
  /**
   * Pushes not attempted because their target's address is internal (not in
   * `PUSH_ALLOWED_NETWORKS`); each is dead-lettered too, and its device kept.
   */
  refused: number;
  /** Pushes whose outcome is unknown (their worker died mid-send), dead-lettered rather than risk a duplicate. */
  outcomeUnknown: number;
  /** Users not pushed because a live subscription of theirs received the notification (`WHEN_OFFLINE`). */
  skippedSeenLive: number;
  /** Pushes not sent because their send marker showed them sent or being sent already. */
  skippedDuplicate: number;
  /** Pushes to a kind of device that has no sender configured. */
  skippedUnconfigured: number;
  /**
   * Pushes not sent because of their user's preferences: the category off for that kind
   * of device, or the notification's ttl passing within the user's quiet hours.
   */
  skippedPreference: number;
  /** Pushes put off to the end of their user's quiet hours (each is decided again then). */
  deferredQuietHours: number;
  /** Devices removed because the push service said they no longer exist. */
  devicesRemoved: number;
  /** Entries done and acknowledged. */
  entriesDone: number;
  /** Entries dropped from the stream (trimmed at its bound) before any worker finished them. */
  lost: number;
  /** Stream entries that could not be parsed (acknowledged and dropped). */
  malformed: number;
  /**
   * Entries let go unstarted, left pending for a later claim, because their tenant had
   * its share of entries in progress and the worker needed the room for other tenants'.
   */
  entriesDeferred: number;
}

export function createPushCounters(): PushCounters {
  return {
    sent: 0,
    dryRun: 0,
    failed: 0,
    retried: 0,
    breakerRejected: 0,
    deadLettered: 0,
    refused: 0,
    outcomeUnknown: 0,
    skippedSeenLive: 0,
    skippedDuplicate: 0,
    skippedUnconfigured: 0,
    skippedPreference: 0,
    deferredQuietHours: 0,
    devicesRemoved: 0,
    entriesDone: 0,
    lost: 0,
    malformed: 0,
    entriesDeferred: 0,
  };
}

/** The reasons are the ledger's: one set, on the metrics' labels and in `delivery(id)`. */
export { FAILURE_REASONS, type FailureReason };

/** What the worker did for one kind of device (`FCM`, `APNS`, `WEB_PUSH`, `WEBHOOK`), as plain integers. */
export interface KindCounts {
  /** Pushes the provider accepted (not dry-run ones). */
  sent: number;
  /** Attempts that did not deliver, by why; their sum is this kind's share of {@link PushCounters.failed}. */
  failed: Record<FailureReason, number>;
  /** Attempts scheduled again. */
  retried: number;
  /** Pushes written to the dead-letter stream. */
  deadLettered: number;
  /** Devices removed because the provider said they are gone. */
  devicesRemoved: number;
}

/** {@link KindCounts} by device kind; a kind's row appears at its first outcome. */
export type CountsByKind = Record<string, KindCounts>;

/** The row of `kind`, made on first use. */
export function countsOf(byKind: CountsByKind, kind: string): KindCounts {
  let row = byKind[kind];
  if (row === undefined) {
    const failed = Object.fromEntries(FAILURE_REASONS.map((reason) => [reason, 0])) as Record<FailureReason, number>;
    row = { sent: 0, failed, retried: 0, deadLettered: 0, devicesRemoved: 0 };
    byKind[kind] = row;
  }
  return row;
}

/** A failed attempt's outcome, as its sender classified it. */
export type FailedOutcome =
  | { readonly outcome: 'gone' | 'failed' | 'refused'; readonly reason: string }
  | { readonly outcome: 'retry'; readonly reason: string; readonly endpointDown?: boolean; readonly circuitOpen?: boolean };

/**
 * The reason label of a failed attempt: gone → `unregistered`, failed → `invalid`,
 * refused → `refused`; a retry is `circuit_open` (not sent, its destination's circuit
 * open), `timeout` (no answer in `PUSH_SEND_TIMEOUT_MS`), `provider_error` (a 5xx, a
 * network error, FCM's 401 or access token), or `rate_limited` (a 429, or another answer
 * worth retrying).
 */
export function failureReasonOf(result: FailedOutcome): FailureReason {
  switch (result.outcome) {
    case 'gone':
      return 'unregistered';
    case 'failed':
      return 'invalid';
    case 'refused':
      return 'refused';
    case 'retry':
      if (result.circuitOpen === true) return 'circuit_open';
      if (result.endpointDown === true) return /timed out|timeout/i.test(result.reason) ? 'timeout' : 'provider_error';
      return /\b429\b/.test(result.reason) ? 'rate_limited' : 'provider_error';
  }
}
