/**
 * Waiting for something an event handler records, without sleeps: handlers call
 * `wake()`, and `until` re-checks its condition on every wake, failing after a bound.
 */
export interface Waiters {
  /** Re-checks every pending `until`. */
  wake(): void;
  /**
   * Resolves with the first non-undefined value of `take()`; rejects after `timeoutMs`
   * naming `what` (and `detail()`, if given, for what was seen instead).
   */
  until<T>(take: () => T | undefined, what: string, timeoutMs: number, detail?: () => string): Promise<T>;
}

export function createWaiters(): Waiters {
  const pending = new Set<() => void>();
  return {
    wake: () => pending.forEach((check) => check()),
    until: (take, what, timeoutMs, detail) =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          const value = take();
          if (value === undefined) return;
          clearTimeout(timer);
          pending.delete(check);
          resolve(value);
        };
        const timer = setTimeout(() => {
          pending.delete(check);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail ? `; ${detail()}` : ''}`));
        }, timeoutMs);
        pending.add(check);
        check();
      }),
  };
}
