/** What Herald logs through; `console` fits, tests pass a quiet one. */
export type Logger = Pick<Console, 'info' | 'warn' | 'error'>;
