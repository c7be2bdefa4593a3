/**
 * The observer that keeps one subscription gapless: between the observer map and the
 * subscription's sink, it holds live notifications back whenever the history must be
 * read first, reads it page by page, and then lets the held ones through, skipping any
 * the history already gave — no gap, no duplicate.
 *
 * History is read first in two cases:
 * - a resume: the client subscribed with a cursor (`since`, `Last-Event-ID`);
 * - an interruption: the subscribe server's Redis subscriber connection dropped (Redis
 *   restarted, failed over, or killed the connection over its output-buffer limit). What
 *   was published until the channels were subscribed again never arrived live; it is
 *   read from history after the last notification this subscription got (or, if it got
 *   none, after the time it opened), or the subscription is told `HISTORY_GAP`. Never
 *   silence.
 *
 * The live filter: history and live notifications travel on different Redis
 * connections, so a notification can be in the history and then arrive live too. Live
 * notifications of one tenant arrive in id order (the publish script appends and
 * PUBLISHes in one step), so once one newer than the last read from history arrives,
 * every later one is newer too and the filter turns itself off.
 */
import { compareIds } from '../broker/history.js';
import type { HistoryAfter } from '../broker/types.js';
import { formatCursor, parseCursor, type Cursor, type ReadPosition } from '../common/cursor.js';
import { decodeNotification, type Notification } from '../common/notification.js';
import type { Observer } from './observers.js';
import type { Sink } from './sink.js';

/**
 * How far before its opening a subscription that has had nothing yet reads after an
 * interruption: ids carry Redis' clock, the opening time this process's, and the two may
 * differ a little. Notifications published that long before it opened may reach it once.
 */
export const CLOCK_MARGIN_MS = 2000;

export interface ResumingObserverOptions {
  /** Where the subscription's notifications go. */
  sink: Sink;
  /**
   * A resume cursor: live notifications are held from the start, until {@link
   * ResumingObserver.catchUp} has read the history after it.
   */
  since?: Cursor | undefined;
  /** Reads one page of the subscription's history after a position. */
  read(after: ReadPosition): Promise<HistoryAfter>;
  /** Most live notifications held back while history is read; one more fails the subscription. */
  maxHeld: number;
  /** The error the subscription fails with when more than `maxHeld` are held. */
  overflowError(): Error;
  /** @default Date.now */
  now?: () => number;
}

export interface ResumingObserver extends Observer {
  /**
   * With `since`: reads the history after it into the sink ahead of anything live, then
   * lets live notifications through. Call once the observer is in the observer map.
   * Rejects with what the history read threw. Without `since`, does nothing.
   */
  catchUp(): Promise<void>;
  /** Stops: nothing more reaches the sink, and no read starts. */
  end(): void;
}

export function createResumingObserver(options: ResumingObserverOptions): ResumingObserver {
  const { sink, read, maxHeld, overflowError } = options;
  const now = options.now ?? Date.now;
  /** Live notifications held back while history is read (undefined: none are). */
  let held: Notification[] | undefined = options.since ? [] : undefined;
  /** The newest id the sink was given, live or from history. */
  let last: string | undefined = options.since ? formatCursor(options.since) : undefined;
  /** Live notifications up to this id were given from history already. */
  let floor: string | undefined;
  /** Where to read from when nothing was given yet: the opening, or the last gap. */
  let startedAt = now();
  let reading = false;
  let interrupted = false;
  let readAgain = false;
  let ended = false;

  const position = (): ReadPosition =>
    (last === undefined ? undefined : parseCursor(last)) ?? { epoch: undefined, ms: startedAt - CLOCK_MARGIN_MS, seq: 0 };

  const pass = (notification: Notification): boolean => {
    if (floor !== undefined) {
      if (compareIds(notification.id, floor) <= 0) return true; // given from history
      floor = undefined;
    }
    last = notification.id;
    return sink.deliver(notification);
  };

  /** Reads every page after the current position into the sink. */
  const readHistory = async (): Promise<void> => {
    let after = position();
    for (;;) {
      const page = await read(after);
      if (ended) return;
      if (page.gap) {
        // A new history began: everything held, and everything after it, is new.
        sink.preload([{ gap: page.reason }]);
        last = undefined;
        startedAt = now();
        return;
      }
      const fresh: Notification[] = [];
      for (const entry of page.entries) {
        const notification = decodeNotification(entry.id, entry.payload);
        if (!notification || (last !== undefined && compareIds(notification.id, last) <= 0)) continue;
        last = notification.id;
        fresh.push(notification);
      }
      if (fresh.length > 0) sink.preload(fresh);
      // Before the next page, or the held ones: the client must have read this one.
      await sink.room();
      const lastEntry = page.entries.at(-1);
      if (ended || !page.more || lastEntry === undefined) return;
      after = parseCursor(lastEntry.id) ?? after;
    }
  };

  /** After a read: read again, keep holding, or let the held ones through. */
  const settle = (): void => {
    if (ended || interrupted) return; // a resync will read again
    if (readAgain) {
      readAgain = false;
      void readInBackground();
      return;
    }
    const waiting = held ?? [];
    held = undefined;
    floor = last;
    for (const notification of waiting) pass(notification);
  };

  const readInBackground = async (): Promise<void> => {
    reading = true;
    try {
      await readHistory();
    } catch (error) {
      reading = false;
      // Redis went away again: its return brings another resync.
      if (!interrupted && !ended) sink.fail(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    reading = false;
    settle();
  };

  return {
    deliver(notification) {
      if (held !== undefined) {
        if (held.length >= maxHeld) {
          sink.fail(overflowError());
          return false;
        }
        held.push(notification);
        return true;
      }
      return pass(notification);
    },
    interrupt() {
      interrupted = true;
      held ??= [];
    },
    resync() {
      if (ended) return;
      interrupted = false;
      held ??= [];
      if (reading) readAgain = true;
      else void readInBackground();
    },
    async catchUp() {
      if (!options.since) return;
      reading = true;
      try {
        await readHistory();
      } finally {
        reading = false;
      }
      settle();
    },
    end() {
      ended = true;
      held = undefined;
    },
  };
}
