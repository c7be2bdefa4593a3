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
