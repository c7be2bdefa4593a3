/**
 * The observer that keeps one subscription gapless: between the observer map and the
 * subscription's sink, it holds live notifications back whenever the history must be
 * read first, reads it page by page — each page only once the client has taken the
 * last — and then lets the held ones through, skipping any the history already gave: no
 * gap, no duplicate, and memory bounded by a page, the sink's bound and `maxHeld`.
 *
 * History is read first in three cases:
 * - a resume: the client subscribed with a cursor (`since`, `Last-Event-ID`);
 * - an interruption: the subscribe server's Redis subscriber connection dropped (Redis
 *   restarted, failed over, or killed the connection over its output-buffer limit). What
 *   was published until the channels were subscribed again never arrived live; it is
 *   read from history after the last notification this subscription got (or, if it got
 *   none, after the time it opened), or the subscription is told `HISTORY_GAP`. Never
 *   silence;
 * - a full sink: a reader that has not taken what it was given (an SSE or gRPC client
 *   behind a burst) is not ended; what did not fit is read from history once it has.
 *
 * More than `maxHeld` live notifications held back while reading are let go: the next
 * read brings them from history.
 *
 * The live filter: history and live notifications travel on different Redis
 * connections, so a notification can be in the history and then arrive live too. Live
 * notifications of one tenant arrive in id order across all its channels (the order the
 * `Broker` interface states and its contract suite tests), so once one newer than the
 * last read from history arrives, every later one is newer too and the filter turns
 * itself off.
 */
import type { LiveTransport } from '../ledger/events.js';
import { compareIds } from '../broker/history.js';
import { type HistoryAfter } from '../broker/types.js';
import { BrokerUnavailableError } from '../common/failures.js';
import { formatCursor, parseCursor, type Cursor, type ReadPosition } from '../common/cursor.js';
import { runAt } from '../common/timers.js';
import { decodeNotification, type Notification, type ReadStateChange } from '../common/notification.js';
import type { Observer } from './observers.js';
import { showsInApp } from '../preferences/decide.js';
import type { CategorySettings, UserPreferences } from '../preferences/preferences.js';
import type { Sink } from './sink.js';

/**
 * How far before its opening a subscription that has had nothing yet reads after an
 * interruption: ids carry Redis' clock, the opening time this process's, and the two may
 * differ a little. Notifications published that long before it opened may reach it once.
 */
export const CLOCK_MARGIN_MS = 2000;

/**
 * Waits before reading history again when a read found Redis unreachable while the
 * channels are still heard — behind Sentinel the command and subscriber connections
 * follow a failover seconds apart, so the subscriber can be back before the reader is:
 * 6.3 s in all, then the subscription fails (`SERVICE_UNAVAILABLE`).
 */
const HISTORY_RETRY_DELAYS_MS: readonly number[] = [100, 200, 400, 800, 1600, 3200];

export interface ResumingObserverOptions {
  /** Where the subscription's notifications go. */
  sink: Sink;
  /**
   * A resume cursor: live notifications are held from the start, until {@link
   * ResumingObserver.catchUp} has read the history after it.
   */
  since?: Cursor | undefined;
  /** Where the subscription's history is read from. */
  history: HistorySource;
  /** Most live notifications held back while history is read; past it they are read from history again. */
  maxHeld: number;
  /**
   * Whether read-state changes go to the sink. They pass at once, even while history is
   * read: a read position only moves forward, so its order against notifications does
   * not matter.
   * @default false
   */
  readState?: boolean;
  /**
   * The waits before each new attempt at a history read that found Redis unavailable
   * (a read that failed otherwise is not tried again); past the last, the sink fails.
   * @default HISTORY_RETRY_DELAYS_MS
   */
  retryDelaysMs?: readonly number[];
  /** @default Date.now */
  now?: () => number;
  /** Whose subscription it is (see `Observer.owner`). @default none */
  owner?: { readonly tenant: string; readonly name: string } | undefined;
  /** The transport it runs on (see `Observer.transport`). @default none */
  transport?: LiveTransport | undefined;
  /**
   * Whether the owner's preferences are being read: live notifications are held until
   * {@link ResumingObserver.preferencesLoaded} (then {@link ResumingObserver.catchUp}),
   * after which a notification whose category is off `IN_APP` is not given (live or
   * from history) unless critical. `preferencesChanged` keeps them up to date, also while
   * they are read: a change heard first is newer than what the read returns.
   * @default false: every notification is given
   */
  awaitPreferences?: boolean;
}

/** A user's preferences and the tenant's defaults, as a subscription holds them. */
export interface LoadedPreferences {
  readonly preferences: UserPreferences;
  readonly defaults: CategorySettings;
}

/** The history of one subscription's channels. */
export interface HistorySource {
  /** Reads one page of the history after a position (called as a method). */
  read(after: ReadPosition): Promise<HistoryAfter>;
}

export interface ResumingObserver extends Observer {
  /**
   * With `since`: reads the history after it into the sink ahead of anything live, then
   * lets live notifications through. Call once the observer is in the observer map.
   * Rejects with what the history read threw. Without `since`, lets through what was
   * held while the preferences were read, if anything.
   */
  catchUp(): Promise<void>;
  /** With `awaitPreferences`: the owner's preferences, read. Call before {@link catchUp}. */
  preferencesLoaded(loaded: LoadedPreferences): void;
  /** Stops: nothing more reaches the sink, and no read starts. */
  end(): void;
}

/**
 * Makes the observer of one subscription. A class, not closures: a subscription lives as
 * long as its connection, and its fields cost a fraction of a dozen closures' contexts.
 */
export function createResumingObserver(options: ResumingObserverOptions): ResumingObserver {
  return new Resuming(options);
}

class Resuming implements ResumingObserver {
  readonly #sink: Sink;
  readonly #history: HistorySource;
  readonly #maxHeld: number;
  readonly #retryDelaysMs: readonly number[];
  readonly #now: () => number;
  readonly #since: Cursor | undefined;
  readonly owner: { readonly tenant: string; readonly name: string } | undefined;
  readonly transport: LiveTransport | undefined;
  /** Live notifications held back while history is read (undefined: none are). */
  #held: Notification[] | undefined;
  /** The newest id the sink was given, live or from history. */
  #last: string | undefined;
  /** Live notifications up to this id were given from history already. */
  #floor: string | undefined;
  /** Where to read from when nothing was given yet: the opening, or the last gap. */
  #startedAt: number;
  #reading = false;
  /** Reads in a row that found Redis unavailable. */
  #failedReads = 0;
  #interrupted = false;
  #readAgain = false;
  #ended = false;
  readonly #readState: boolean;
  /** The owner's own choices, the newest heard (its version in {@link #preferencesVersion}). */
  #categories: CategorySettings | undefined;
  #preferencesVersion = 0;
  #defaults: CategorySettings | undefined;
  /** The preferences are being read: nothing held is let go until they are back. */
  #awaitingPreferences: boolean;

  constructor(options: ResumingObserverOptions) {
    this.#readState = options.readState ?? false;
    this.#sink = options.sink;
    this.#history = options.history;
    this.#maxHeld = options.maxHeld;
    this.#retryDelaysMs = options.retryDelaysMs ?? HISTORY_RETRY_DELAYS_MS;
    this.#now = options.now ?? Date.now;
    this.#since = options.since;
    this.owner = options.owner;
    this.transport = options.transport;
    this.#awaitingPreferences = options.awaitPreferences ?? false;
    this.#held = options.since || this.#awaitingPreferences ? [] : undefined;
    this.#last = options.since ? formatCursor(options.since) : undefined;
    this.#startedAt = this.#now();
  }

  notify(notification: Notification): boolean {
    const held = this.#held;
    if (held === undefined) return this.#pass(notification);
    if (held.length >= this.#maxHeld) {
      // Let them go: everything after the last one given is read from history again.
      this.#held = [notification];
      this.#readAgain = true;
    } else {
      held.push(notification);
    }
    return true;
  }

  preferencesLoaded({ preferences, defaults }: LoadedPreferences): void {
    this.#awaitingPreferences = false;
    this.#defaults = defaults;
    this.preferencesChanged(preferences);
    this.#categories ??= preferences.categories;
  }

  preferencesChanged(preferences: UserPreferences): void {
    if (preferences.version <= this.#preferencesVersion) return; // an older change, heard late
    this.#preferencesVersion = preferences.version;
    this.#categories = preferences.categories;
  }

  /** Whether the owner's preferences let a notification with a category through (`IN_APP`). */
  #shows(notification: Notification): boolean {
    const categories = this.#categories;
    const defaults = this.#defaults;
    if (categories === undefined || defaults === undefined) return true;
    return showsInApp(categories, defaults, notification);
  }

  readStateChanged(change: ReadStateChange): void {
    if (this.#readState && !this.#ended) this.#sink.deliver(change);
  }

  interrupt(): void {
    this.#interrupted = true;
    this.#held ??= [];
  }

  resync(): void {
    if (this.#ended) return;
    this.#interrupted = false;
    this.#failedReads = 0;
    this.#held ??= [];
    this.#readLater();
  }

  async catchUp(): Promise<void> {
    if (!this.#since) {
      // Held while the preferences were read; an interrupted one is let go by its resync.
      if (this.#held !== undefined && !this.#reading && !this.#interrupted) this.#settle();
      return;
    }
    this.#reading = true;
    try {
      await this.#readHistory();
    } finally {
      this.#reading = false;
    }
    this.#settle();
  }

  end(): void {
    this.#ended = true;
    this.#held = undefined;
  }

  #position(): ReadPosition {
    const last = this.#last === undefined ? undefined : parseCursor(this.#last);
    return last ?? { epoch: undefined, ms: this.#startedAt - CLOCK_MARGIN_MS, seq: 0 };
  }

  #pass(notification: Notification): boolean {
    // Not taken, so not counted as reaching the user live (its push is decided alone).
    if (notification.category !== undefined && !this.#shows(notification)) return false;
    if (this.#floor !== undefined) {
      if (compareIds(notification.id, this.#floor) <= 0) return true; // given from history
      this.#floor = undefined;
    }
    if (this.#sink.deliver(notification)) {
      this.#last = notification.id;
      return true;
    }
    if (this.#ended) return false;
    // Full: this one, and what follows, come from history once the reader has room.
    this.#held = [];
    this.#readLater();
    return true;
  }

  /** Reads from history now, or once the read under way is done. */
  #readLater(): void {
    if (this.#reading) this.#readAgain = true;
    else void this.#readInBackground();
  }

  /** Reads every page after the current position into the sink, each once the reader has room. */
  async #readHistory(): Promise<void> {
    const sink = this.#sink;
    let after = this.#position();
    for (;;) {
      await sink.room();
      if (this.#ended) return;
      const page = await this.#history.read(after);
      if (this.#ended) return;
      if (page.gap) {
        // A new history began: everything held, and everything after it, is new.
        sink.preload([{ gap: page.reason }]);
        this.#last = undefined;
        this.#startedAt = this.#now();
        return;
      }
      const fresh: Notification[] = [];
      for (const entry of page.entries) {
        const notification = decodeNotification(entry.id, entry.payload);
        if (!notification || (this.#last !== undefined && compareIds(notification.id, this.#last) <= 0)) continue;
        this.#last = notification.id;
        if (notification.category !== undefined && !this.#shows(notification)) continue;
        fresh.push(notification);
      }
      if (fresh.length > 0) sink.preload(fresh);
      const lastEntry = page.entries.at(-1);
      if (!page.more || lastEntry === undefined) {
        // Before the held ones: the client must have taken this page.
        await sink.room();
        return;
      }
      after = parseCursor(lastEntry.id) ?? after;
    }
  }

  /** After a read: read again, keep holding, or let the held ones through. */
  #settle(): void {
    if (this.#ended || this.#interrupted) return; // a resync will read again
    if (this.#awaitingPreferences) return; // `catchUp` settles once they are back
    if (this.#readAgain) {
      this.#readAgain = false;
      void this.#readInBackground();
      return;
    }
    const waiting = this.#held ?? [];
    this.#held = undefined;
    this.#floor = this.#last;
    for (const notification of waiting) {
      // Fell behind again: the rest are newer than the last given, and come from history.
      if (this.#held !== undefined) break;
      this.#pass(notification);
    }
  }

  async #readInBackground(): Promise<void> {
    this.#reading = true;
    try {
      await this.#readHistory();
    } catch (error) {
      this.#reading = false;
      // The channels dropped again: their return brings another resync.
      if (this.#interrupted || this.#ended) return;
      const delay = error instanceof BrokerUnavailableError ? this.#retryDelaysMs[this.#failedReads] : undefined;
      if (delay === undefined) {
        this.#sink.fail(error instanceof Error ? error : new Error(String(error)));
        return;
      }
      // Held as if reading, so what asks for a read meanwhile waits for this one.
      this.#failedReads += 1;
      this.#reading = true;
      runAt(Date.now() + delay, () => {
        this.#reading = false;
        if (!this.#interrupted && !this.#ended) void this.#readInBackground();
      });
      return;
    }
    this.#failedReads = 0;
    this.#reading = false;
    this.#settle();
  }
}
