/** What Herald logs through; `console` fits, tests pass a quiet one. */
export type Logger = Pick<Console, 'info' | 'warn' | 'error'>;

/** A logger that drops everything below `error`. */
export const quietLogger: Logger = {
  info: () => undefined,
  warn: () => undefined,
  error: (...args: unknown[]) => console.error(...args),
};
