/**
 * The worker's waits (the offline grace, its loops' and the retry poller's pauses), all ended at
 * once when the worker stops.
 *
 * One `abort` listener on the worker's signal serves every wait: a listener per wait on
 * the one shared signal grew with the backlog (a thousand pushes waiting to be retried at
 * a hanging webhook were a thousand listeners, and a MaxListenersExceededWarning). Each
 * wait leaves nothing behind once it ends, either way.
 */
export interface Sleeper {
  /** Resolves true after `ms`, or false at once when the signal aborts (or has). */
  sleep(ms: number): Promise<boolean>;
  /** Waits not yet ended. */
  readonly pending: number;
}

export function createSleeper(signal: AbortSignal): Sleeper {
  const wakers = new Set<() => void>();
  signal.addEventListener(
    'abort',
    () => {
      for (const wake of wakers) wake();
    },
    { once: true },
  );
  return {
    get pending() {
      return wakers.size;
    },
    sleep(ms) {
      if (signal.aborted) return Promise.resolve(false);
      return new Promise((resolve) => {
        const wake = (): void => {
          clearTimeout(timer);
          wakers.delete(wake);
          resolve(false);
        };
        const timer = setTimeout(() => {
          wakers.delete(wake);
          resolve(true);
        }, ms);
        wakers.add(wake);
      });
    },
  };
}
