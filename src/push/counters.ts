/**
 * What the push worker has done since it started, as plain integers a metrics module
 * can read (and export as Prometheus counters) without knowing the worker.
 */
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
    devicesRemoved: 0,
    entriesDone: 0,
    lost: 0,
    malformed: 0,
    entriesDeferred: 0,
  };
}
