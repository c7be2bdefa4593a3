/**
 * What a ledger store is, whichever keeps it (Redis, or the in-process broker's memory):
 * a {@link LedgerWriter} that appends to a notification's timeline once it exists, and a
 * reader of the whole timeline.
 */
import type { AcceptedEvent, LedgerEvent, LedgerWriter } from './events.js';

/** One notification's timeline as stored. */
export interface LedgerRecord {
  /** Oldest first, as written (each writer's events in its own order). */
  readonly events: readonly LedgerEvent[];
  /** Events not kept: the timeline was full (`LEDGER_MAX_EVENTS`). */
  readonly dropped: number;
}

export interface LedgerReader {
  /** The timeline of `notificationId` in `tenant`, or undefined when there is none (unknown, expired, or the ledger off). */
  read(tenant: string, notificationId: string): Promise<LedgerRecord | undefined>;
}

/** Counts a process keeps of its ledger writes (read at scrape time). */
export interface LedgerCounts {
  /** Events written to an existing ledger (the accepted ones are counted by the publish). */
  ledgerEvents: number;
  /** Batches that could not be written (their events are lost; delivery went on). */
  ledgerWriteFailures: number;
}

export interface LedgerStore extends LedgerWriter, LedgerReader {
  /** How many events one notification keeps (`LEDGER_MAX_EVENTS`). */
  readonly maxEvents: number;
}

/** A store that starts a timeline itself: the in-process broker's (Redis starts it in the publish script). */
export interface StartingLedgerStore extends LedgerStore {
  /** Makes the timeline of a new notification, with its first event. */
  start(tenant: string, notificationId: string, event: AcceptedEvent): void;
}

/** Events are JSON objects with a `type`; anything else read back is skipped. */
export function parseEvent(text: string): LedgerEvent | undefined {
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null) return undefined;
    const type = (value as { type?: unknown }).type;
    return type === 'accepted' || type === 'live' || type === 'push' || type === 'read' ? (value as LedgerEvent) : undefined;
  } catch {
    return undefined;
  }
}
