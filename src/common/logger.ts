/**
 * What Herald logs through: the structured logger (`structured-logger.ts`) in the
 * servers, `console` or a quiet one in tests.
 */
export interface Logger extends Pick<Console, 'info' | 'warn' | 'error'> {
  /** Detail written only with `LOG_LEVEL=debug`: connections and requests. Absent: dropped. */
  debug?: (...args: unknown[]) => void;
  /** A logger whose lines also carry `bindings` (a connection or request id). Absent: lines go unbound. */
  child?: (bindings: Record<string, string | number>) => Logger;
}

/** `logger` with `bindings` on every line, where it can bind them. */
export function bound(logger: Logger, bindings: Record<string, string | number>): Logger {
  return logger.child?.(bindings) ?? logger;
}
