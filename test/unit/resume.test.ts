/**
 * The resuming observer, between the observer map and a subscription's sink: history
 * before live on a resume, after an interruption and for a reader that fell behind; no
 * gap, no duplicate, and live notifications held back only while history is read.
 */
import { describe, expect, it } from 'vitest';
import { type BrokerMessage, type HistoryAfter } from '../../src/broker/types.js';
import { BrokerUnavailableError } from '../../src/common/failures.js';
import { parseCursor, type ReadPosition } from '../../src/common/cursor.js';
import { encodeNotification, type SubscriptionItem, type Notification } from '../../src/common/notification.js';
import { CLOCK_MARGIN_MS, createResumingObserver } from '../../src/core/resume.js';
import type { Sink } from '../../src/core/sink.js';

const EPOCH = 'e1';
const id = (seq: number): string => `${EPOCH}_1000-${seq}`;
const body = (seq: number) => ({ text: `n${seq}`, timestamp: 1, audience: 'USER', sender: 'billing' }) as const;
const live = (seq: number): Notification => ({ id: id(seq), ...body(seq) });
const stored = (seq: number): BrokerMessage => ({ id: id(seq), payload: encodeNotification(body(seq)) });

/** What reached the sink, in order: `deliver` and `preload` alike, as texts (`gap` for a gap). */
function recordingSink(options: { takes?: () => boolean } = {}) {
  const got: string[] = [];
  const failures: Error[] = [];
  const name = (item: SubscriptionItem): string => ('gap' in item ? 'gap' : 'readUpTo' in item ? `read ${item.readUpTo}` : item.text);
  const sink: Sink = {
    deliver(item) {
      if (!(options.takes?.() ?? true)) return false;
      got.push(name(item));
      return true;
    },
    preload: (items) => got.push(...items.map(name)),
    room: () => Promise.resolve(),
    fail: (error) => failures.push(error),
    return: () => Promise.resolve(),
  };
  return { sink, got, failures };
}

/**
 * A history of `seqs` read `pageSize` at a time after a position, like `readAfter`;
 * every position asked for is kept, and `gate` (when set) holds each read until opened.
 */
function history(seqs: number[], pageSize = 2) {
  const asked: ReadPosition[] = [];
  const state: { gate: Promise<void> | undefined; gap: string | undefined } = { gate: undefined, gap: undefined };
  const read = async (after: ReadPosition): Promise<HistoryAfter> => {
    asked.push(after);
    await state.gate;
    if (state.gap !== undefined) return { gap: true, reason: state.gap };
    const entries = seqs.map(stored).filter((entry) => {
      const cursor = parseCursor(entry.id);
      return cursor !== undefined && (cursor.ms > after.ms || (cursor.ms === after.ms && cursor.seq > after.seq));
    });
    return { gap: false, entries: entries.slice(0, pageSize), more: entries.length > pageSize };
  };
  return { read, asked, state, seqs };
}

function deferred(): { promise: Promise<void>; open: () => void } {
  let open: () => void = () => undefined;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/** Lets every pending microtask and I/O callback run. */
const settled = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('createResumingObserver', () => {
  it('without a cursor passes live notifications straight through and reads nothing', async () => {
    const { sink, got } = recordingSink();
    const { read, asked } = history([1, 2]);
    const observer = createResumingObserver({ sink, history: { read }, maxHeld: 10 });
    await observer.catchUp();
    expect(observer.notify(live(3))).toBe(true);
    expect(got).toEqual(['n3']);
    expect(asked).toEqual([]);
  });

  it('with a cursor gives every page of history first, then what arrived live meanwhile, without a duplicate', async () => {
    const { sink, got } = recordingSink();
    const { read, asked, state } = history([1, 2, 3, 4]);
    const gate = deferred();
    state.gate = gate.promise;
    const observer = createResumingObserver({ sink, since: parseCursor(id(0)), history: { read }, maxHeld: 10 });

    const caughtUp = observer.catchUp();
    // Published while history is read: 4 is in the history too, 5 only live.
    observer.notify(live(4));
    observer.notify(live(5));
    expect(got).toEqual([]);
    gate.open();
    await caughtUp;

    expect(got).toEqual(['n1', 'n2', 'n3', 'n4', 'n5']);
    expect(asked.map(({ seq }) => seq)).toEqual([0, 2]); // a page at a time, after the last of the one before
    observer.notify(live(6));
    expect(got.at(-1)).toBe('n6');
  });

  it('tells a gap, then lets the held notifications through', async () => {
    const { sink, got } = recordingSink();
    const { read, state } = history([]);
    state.gap = 'notifications after the cursor were trimmed';
    const gate = deferred();
    state.gate = gate.promise;
    const observer = createResumingObserver({ sink, since: parseCursor(id(0)), history: { read }, maxHeld: 10 });
    const caughtUp = observer.catchUp();
    observer.notify(live(7));
    gate.open();
    await caughtUp;
    expect(got).toEqual(['gap', 'n7']);
  });

  it('after an interruption holds live notifications, reads after the last one given on resync, and skips what history gave', async () => {
    const { sink, got } = recordingSink();
    const { read, asked } = history([1, 2, 3, 4]);
    const observer = createResumingObserver({ sink, history: { read }, maxHeld: 10 });
    observer.notify(live(1));
    observer.interrupt?.();
    // 2 and 3 were published while the connection was down: never heard live.
    observer.notify(live(4)); // heard on the new connection before the resync
    expect(got).toEqual(['n1']);

    observer.resync?.();
    await settled();
    expect(asked[0]).toMatchObject({ epoch: EPOCH, seq: 1 });
    expect(got).toEqual(['n1', 'n2', 'n3', 'n4']);
  });

  it('after an interruption with nothing given yet, reads from its opening, less the clock margin', async () => {
    const { sink, got } = recordingSink();
    const { read, asked } = history([]);
    const observer = createResumingObserver({ sink, history: { read }, maxHeld: 10, now: () => 50_000 });
    observer.interrupt?.();
    observer.resync?.();
    await settled();
    expect(asked).toEqual([{ epoch: undefined, ms: 50_000 - CLOCK_MARGIN_MS, seq: 0 }]);
    expect(got).toEqual([]);
  });

  it('a sink that is full gets what did not fit from history once it has room, in order', async () => {
    let full = false;
    const { sink, got } = recordingSink({ takes: () => !full });
    const { read, asked } = history([1, 2, 3, 4]);
    const observer = createResumingObserver({ sink, history: { read }, maxHeld: 10 });
    observer.notify(live(1));
    full = true;
    expect(observer.notify(live(2))).toBe(true); // not refused: it will come from history
    full = false;
    observer.notify(live(3));
    observer.notify(live(4));
    await settled();
    expect(asked[0]).toMatchObject({ seq: 1 });
    expect(got).toEqual(['n1', 'n2', 'n3', 'n4']);
  });

  it('lets go of more than maxHeld held notifications and reads them from history again', async () => {
    const { sink, got } = recordingSink();
    const { read, asked, state } = history([1, 2, 3, 4, 5, 6], 10);
    const gate = deferred();
    state.gate = gate.promise;
    const observer = createResumingObserver({ sink, since: parseCursor(id(0)), history: { read }, maxHeld: 2 });
    const caughtUp = observer.catchUp();
    for (const seq of [4, 5, 6]) observer.notify(live(seq)); // one more than maxHeld
    state.gate = undefined;
    gate.open();
    await caughtUp;
    await settled();
    expect(asked.length).toBeGreaterThan(1);
    expect(got).toEqual(['n1', 'n2', 'n3', 'n4', 'n5', 'n6']);
  });

  it('fails the sink with what the history read threw, unless an interruption explains it', async () => {
    const { sink, failures } = recordingSink();
    const broken = new Error('Redis is unavailable');
    const observer = createResumingObserver({ sink, history: { read: () => Promise.reject(broken) }, maxHeld: 10 });
    observer.interrupt?.();
    observer.resync?.();
    await settled();
    expect(failures).toEqual([broken]);
  });

  it('reads again, after a wait, while Redis is unavailable to the reader but the channels are heard (a failover), and loses nothing', async () => {
    const { sink, got, failures } = recordingSink();
    const { read: readHistory } = history([1, 2, 3]);
    let refusals = 2;
    const asked: ReadPosition[] = [];
    const read = (after: ReadPosition): Promise<HistoryAfter> => {
      asked.push(after);
      if (refusals-- > 0) return Promise.reject(new BrokerUnavailableError('Redis is unavailable (XRANGE was not sent)'));
      return readHistory(after);
    };
    const observer = createResumingObserver({ sink, history: { read }, maxHeld: 10, retryDelaysMs: [5, 5, 5] });
    observer.notify(live(1));
    observer.interrupt?.();
    observer.notify(live(3));
    observer.resync?.();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(failures).toEqual([]);
    expect(asked).toHaveLength(3);
    expect(got).toEqual(['n1', 'n2', 'n3']);
  });

  it('fails the sink once the waits are spent, and only then', async () => {
    const { sink, got, failures } = recordingSink();
    let reads = 0;
    const unavailable = new BrokerUnavailableError('Redis is unavailable (XRANGE was not sent)');
    const observer = createResumingObserver({
      sink,
      history: { read: () => (reads++, Promise.reject(unavailable)) },
      maxHeld: 10,
      retryDelaysMs: [5, 5],
    });
    observer.interrupt?.();
    observer.notify(live(1));
    observer.resync?.();
    await settled();
    expect(failures).toEqual([]); // waiting to read again
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(reads).toBe(3);
    expect(failures).toEqual([unavailable]);
    expect(got).toEqual([]);
  });

  it('an interruption while it waits to read again: no failure, and the resync reads', async () => {
    const { sink, got, failures } = recordingSink();
    const { read: readHistory } = history([1, 2]);
    let refuse = true;
    const read = (after: ReadPosition): Promise<HistoryAfter> =>
      refuse ? Promise.reject(new BrokerUnavailableError('Redis is unavailable (XRANGE was not sent)')) : readHistory(after);
    const observer = createResumingObserver({ sink, history: { read }, maxHeld: 10, retryDelaysMs: [30], now: () => 1000 });
    observer.interrupt?.();
    observer.resync?.();
    await settled();
    observer.interrupt?.(); // the channels drop again before the wait is over
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(failures).toEqual([]);
    refuse = false;
    observer.resync?.();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(failures).toEqual([]);
    expect(got).toEqual(['n1', 'n2']);
  });

  it('once ended (with its sink), reads nothing and reports nothing taken', async () => {
    let ended = false;
    const { sink, got } = recordingSink({ takes: () => !ended });
    const { read, asked } = history([1, 2]);
    const observer = createResumingObserver({ sink, history: { read }, maxHeld: 10 });
    ended = true;
    observer.end();
    expect(observer.notify(live(1))).toBe(false);
    observer.resync?.();
    await settled();
    expect(got).toEqual([]);
    expect(asked).toEqual([]);
  });
});

describe('createResumingObserver with preferences', () => {
  const promo = (seq: number, critical = false): Notification => ({ ...live(seq), category: 'promo', ...(critical ? { critical: true as const } : {}) });
  const storedPromo = (seq: number): BrokerMessage => ({ id: id(seq), payload: encodeNotification({ ...body(seq), category: 'promo' }) });
  const mutedPromo = { preferences: { version: 3, categories: new Map([['promo', { IN_APP: false }]]) }, defaults: new Map() };

  it('drops a category off IN_APP live (not taken, so not counted), lets critical and other ones through, and follows newer changes only', async () => {
    const { sink, got } = recordingSink();
    const observer = createResumingObserver({ sink, history: history([]), maxHeld: 10, awaitPreferences: true });
    observer.preferencesLoaded(mutedPromo);
    await observer.catchUp();
    expect(observer.notify(promo(1))).toBe(false);
    expect(observer.notify(promo(2, true))).toBe(true);
    expect(observer.notify(live(3))).toBe(true);
    // An older change heard late changes nothing; a newer one applies at once.
    observer.preferencesChanged?.({ version: 2, categories: new Map() });
    expect(observer.notify(promo(4))).toBe(false);
    observer.preferencesChanged?.({ version: 4, categories: new Map([['promo', { IN_APP: true }]]) });
    expect(observer.notify(promo(5))).toBe(true);
    expect(got).toEqual(['n2', 'n3', 'n5']);
  });

  it('holds what arrives while the preferences are read, then filters it; a change heard during the read wins over it', async () => {
    const { sink, got } = recordingSink();
    const observer = createResumingObserver({ sink, history: history([]), maxHeld: 10, awaitPreferences: true });
    observer.notify(promo(1));
    observer.notify(live(2));
    expect(got).toEqual([]);
    // Told while the read was in flight: newer than what the read returns.
    observer.preferencesChanged?.({ version: 4, categories: new Map([['promo', { IN_APP: false }], ['news', { IN_APP: false }]]) });
    observer.preferencesLoaded({ ...mutedPromo, preferences: { version: 3, categories: new Map([['promo', { IN_APP: true }]]) } });
    await observer.catchUp();
    observer.notify({ ...live(3), category: 'news' });
    observer.notify(live(4));
    expect(got).toEqual(['n2', 'n4']);
  });

  it('lets nothing held go before the preferences are back, even after a resync', async () => {
    const { sink, got } = recordingSink();
    const observer = createResumingObserver({ sink, history: history([]), maxHeld: 10, awaitPreferences: true });
    observer.notify(promo(1));
    observer.interrupt?.();
    observer.resync?.();
    await settled();
    expect(got).toEqual([]);
    observer.preferencesLoaded(mutedPromo);
    await observer.catchUp();
    observer.notify(live(2));
    expect(got).toEqual(['n2']);
  });

  it('drops it from history on a resume too, and resumes after it', async () => {
    const { sink, got } = recordingSink();
    const source = {
      read: async (after: ReadPosition): Promise<HistoryAfter> => {
        const entries = [storedPromo(2), stored(3), storedPromo(4)].filter((entry) => (parseCursor(entry.id)?.seq ?? 0) > after.seq);
        return { gap: false, entries, more: false };
      },
    };
    const observer = createResumingObserver({ sink, since: parseCursor(id(1)), history: source, maxHeld: 10, awaitPreferences: true });
    observer.preferencesLoaded(mutedPromo);
    await observer.catchUp();
    observer.notify(live(5));
    expect(got).toEqual(['n3', 'n5']);
  });
});
