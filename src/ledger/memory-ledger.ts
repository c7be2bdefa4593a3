/**
 * The ledger of the in-process broker (development without Redis): the same contract as
 * the Redis ledger — a timeline starts with its accepted event, later events only append
 * to one that exists, at most `maxEvents` kept and the rest counted, gone after `ttlMs` —
 * held in memory, at most `maxNotifications` timelines (the oldest made goes first).
 */
import type { AcceptedEvent, LedgerEvent } from './events.js';
import type { LedgerCounts, LedgerRecord, StartingLedgerStore } from './store.js';

export interface MemoryLedgerOptions {
  /** Events one notification keeps (`LEDGER_MAX_EVENTS`, at least 1). */
  maxEvents: number;
  /** How long a timeline is kept, in ms (history's: `HISTORY_MAX_AGE_SECONDS`). */
  ttlMs: number;
  /** Timelines kept at most; the oldest made is forgotten first. @default 10000 */
  maxNotifications?: number;
  /** Where writes are counted. @default counts nobody reads */
  counts?: LedgerCounts;
  /** The clock, in ms since the epoch. @default Date.now */
  now?: () => number;
}

interface Timeline {
  readonly events: LedgerEvent[];
  dropped: number;
  readonly expiresAt: number;
}

export function createMemoryLedger(options: MemoryLedgerOptions): StartingLedgerStore {
  const { maxEvents, ttlMs } = options;
  if (!Number.isInteger(maxEvents) || maxEvents < 1) throw new RangeError('maxEvents must be an integer of at least 1');
  const maxNotifications = options.maxNotifications ?? 10_000;
  const now = options.now ?? Date.now;
  const counts = options.counts ?? { ledgerEvents: 0, ledgerWriteFailures: 0 };
  /** By `<tenant>\n<id>`, in the order made (a Map keeps insertion order). */
  const timelines = new Map<string, Timeline>();
  const keyOf = (tenant: string, id: string): string => `${tenant}\n${id}`;

  const live = (key: string): Timeline | undefined => {
    const timeline = timelines.get(key);
    if (timeline !== undefined && timeline.expiresAt <= now()) {
      timelines.delete(key);
      return undefined;
    }
    return timeline;
  };

  return {
    maxEvents,
    start(tenant: string, notificationId: string, event: AcceptedEvent) {
      const key = keyOf(tenant, notificationId);
      if (live(key) !== undefined) return;
      timelines.set(key, { events: [event], dropped: 0, expiresAt: now() + ttlMs });
      while (timelines.size > maxNotifications) {
        const oldest = timelines.keys().next().value;
        if (oldest === undefined) break;
        timelines.delete(oldest);
      }
    },
    record(tenant, notificationId, event) {
      const timeline = live(keyOf(tenant, notificationId));
      if (timeline === undefined) return;
      if (timeline.events.length < maxEvents) {
        timeline.events.push(event);
        counts.ledgerEvents += 1;
      } else timeline.dropped += 1;
    },
    flush: () => Promise.resolve(),
    read(tenant, notificationId): Promise<LedgerRecord | undefined> {
      const timeline = live(keyOf(tenant, notificationId));
      return Promise.resolve(timeline && { events: [...timeline.events], dropped: timeline.dropped });
    },
  };
}
