/** Node's timers overflow past 2^31-1 ms (about 24.8 days); tokens may live longer. */
export const MAX_TIMER_DELAY_MS = 2_147_483_647;

export interface Cancel {
  (): void;
}

/** The clock and the one timer a {@link DeadlineScheduler} uses; injected by tests. */
export interface SchedulerClock<Timer = unknown> {
  /** Wall-clock time in ms since the epoch. */
  now(): number;
  /** Arms a timer that must not keep the process alive; `delayMs` is at most 2^31-1. */
  setTimer(callback: () => void, delayMs: number): Timer;
  /** Disarms `timer` and leaves nothing of it behind. */
  clearTimer(timer: Timer): void;
}

/**
 * Node's own timers, unref'd. Clearing one refs it first: Node frees a timer's
 * `TimersList` (one per distinct delay) on `clearTimeout` only for a ref'd timer, on the
 * grounds that unref'd ones "are incredibly likely to come from http" and will be
 * recreated (lib/timers.js, `unenroll`, Node 20 to 24). An unref'd timer cleared with a
 * delay no other timer shares leaves its list behind for the life of the process.
 */
const nodeClock: SchedulerClock<NodeJS.Timeout> = {
  now: () => Date.now(),
  setTimer: (callback, delayMs) => setTimeout(callback, delayMs).unref(),
  clearTimer: (timer) => clearTimeout(timer.ref()),
};

/**
 * Runs callbacks at wall-clock deadlines with one timer for all of them, armed for the
 * earliest. Each connection's token expiry is a deadline; a timer per connection cost
 * Node a `TimersList` per distinct delay, and cancelled unref'd timers never gave theirs
 * back (+249 B of heap per connection).
 */
export interface DeadlineScheduler {
  /**
   * Runs `callback` at `at` (ms since the epoch), never before, however far away; at
   * once (synchronously) when `at` has passed. The returned function cancels it, and a
   * cancelled deadline keeps nothing.
   */
  runAt(at: number, callback: () => void): Cancel;
  /** Deadlines waiting to run. */
  readonly size: number;
}

interface Deadline {
  readonly at: number;
  /** Tie-break, so deadlines at the same time run in the order they were set. */
  readonly order: number;
  /** Dropped once run or cancelled, so the closure is not kept. */
  callback: (() => void) | undefined;
  /** Its place in the heap; -1 once out of it. */
  index: number;
}

export function createDeadlineScheduler<Timer>(clock: SchedulerClock<Timer>): DeadlineScheduler;
export function createDeadlineScheduler(): DeadlineScheduler;
export function createDeadlineScheduler(clock: SchedulerClock = nodeClock): DeadlineScheduler {
  /** A binary min-heap on (at, order); each deadline knows its index, so a cancel removes it. */
  const heap: Deadline[] = [];
  let order = 0;
  let timer: unknown;
  let armed = false;
  /** When the armed timer fires (wall clock). */
  let armedFor = Infinity;

  const earlier = (a: Deadline, b: Deadline): boolean => a.at < b.at || (a.at === b.at && a.order < b.order);
  const place = (deadline: Deadline, index: number): void => {
    heap[index] = deadline;
    deadline.index = index;
  };
  const siftUp = (index: number): void => {
    const deadline = heap[index]!;
    while (index > 0) {
      const parentIndex = (index - 1) >> 1;
      const parent = heap[parentIndex]!;
      if (!earlier(deadline, parent)) break;
      place(parent, index);
      index = parentIndex;
    }
    place(deadline, index);
  };
  const siftDown = (index: number): void => {
    const deadline = heap[index]!;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && earlier(heap[right]!, heap[left]!) ? right : left;
      if (!earlier(heap[child]!, deadline)) break;
      place(heap[child]!, index);
      index = child;
    }
    place(deadline, index);
  };
  const remove = (deadline: Deadline): void => {
    const index = deadline.index;
    deadline.index = -1;
    const last = heap.pop()!;
    if (last === deadline) return;
    place(last, index);
    siftDown(index);
    siftUp(last.index);
  };

  const arm = (): void => {
    const next = heap[0];
    // With nothing to wait for, an armed timer is left to fire and find nothing: cheaper
    // than clearing it on every cancel.
    if (next === undefined || (armed && armedFor <= next.at)) return;
    if (armed) clock.clearTimer(timer);
    const now = clock.now();
    const delay = Math.min(Math.max(next.at - now, 1), MAX_TIMER_DELAY_MS);
    armed = true;
    armedFor = now + delay;
    timer = clock.setTimer(fire, delay);
  };

  const fire = (): void => {
    armed = false;
    armedFor = Infinity;
    const now = clock.now();
    const due: Deadline[] = [];
    // A timer may fire a little before the wall clock says (it runs on the monotonic
    // clock); what is not due yet waits for the next one.
    while (heap[0] !== undefined && heap[0].at <= now) {
      const deadline = heap[0];
      remove(deadline);
      due.push(deadline);
    }
    arm();
    for (const deadline of due) {
      const callback = deadline.callback;
      // An earlier callback of this batch may have cancelled it.
      if (callback === undefined) continue;
      deadline.callback = undefined;
      callback();
    }
  };

  return {
    runAt(at, callback) {
      if (at <= clock.now()) {
        callback();
        return () => undefined;
      }
      const deadline: Deadline = { at, order: order++, callback, index: heap.length };
      heap.push(deadline);
      siftUp(deadline.index);
      arm();
      return () => {
        deadline.callback = undefined;
        if (deadline.index >= 0) remove(deadline);
      };
    },
    get size() {
      return heap.length;
    },
  };
}

/** The process' one scheduler, behind {@link runAt}. */
const deadlines = createDeadlineScheduler();

/** Runs `callback` at the wall-clock time `at` (ms since the epoch), however far away. */
export function runAt(at: number, callback: () => void): Cancel {
  return deadlines.runAt(at, callback);
}

/** Schedules work for the end of the current turn of the event loop. */
export type AfterThisTurn = (callback: () => void) => void;

/**
 * One `setImmediate` per turn for every callback scheduled in it: they run once the
 * turn's I/O callbacks are done, in the order they were scheduled.
 */
export function createTurnEnd(): AfterThisTurn {
  let pending: Array<() => void> = [];
  const run = (): void => {
    const callbacks = pending;
    pending = [];
    for (const callback of callbacks) callback();
  };
  return (callback) => {
    if (pending.length === 0) setImmediate(run);
    pending.push(callback);
  };
}
