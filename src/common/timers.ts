/** Node's timers overflow past 2^31-1 ms (about 24.8 days); tokens may live longer. */
const MAX_DELAY_MS = 2_147_483_647;

export interface Cancel {
  (): void;
}

/** Runs `callback` at the wall-clock time `at` (ms since the epoch), however far away. */
export function runAt(at: number, callback: () => void): Cancel {
  let timer: NodeJS.Timeout;
  const arm = (): void => {
    const delay = at - Date.now();
    if (delay <= 0) return callback();
    timer = setTimeout(delay > MAX_DELAY_MS ? arm : callback, Math.min(delay, MAX_DELAY_MS));
    timer.unref();
  };
  arm();
  return () => clearTimeout(timer);
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
