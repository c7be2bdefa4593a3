/**
 * A counting semaphore: at most `limit` holders at once, the rest wait in arrival order.
 * Waiters are bounded by their callers (each entry the worker holds waits for one slot
 * at a time), not here.
 */
export interface Limiter {
  /** Resolves with the release function once a slot is free; call it exactly once. */
  acquire(): Promise<() => void>;
  readonly active: number;
  readonly waiting: number;
}

export function createLimiter(limit: number): Limiter {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`limit must be a whole number of at least 1, not ${limit}`);
  let active = 0;
  const waiters: Array<() => void> = [];
  const release = (): void => {
    const next = waiters.shift();
    if (next) next();
    else active -= 1;
  };
  const once = (): (() => void) => {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      release();
    };
  };
  return {
    get active() {
      return active;
    },
    get waiting() {
      return waiters.length;
    },
    acquire() {
      if (active < limit) {
        active += 1;
        return Promise.resolve(once());
      }
      // the slot passes straight from the releaser to the waiter: `active` stays the same
      return new Promise((resolve) => waiters.push(() => resolve(once())));
    },
  };
}
