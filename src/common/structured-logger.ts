/**
 * Herald's logger on pino: one JSON object per line (`level`, `time`, `role`, `msg`, and
 * a connection or request id where the caller binds one) in production, readable lines
 * in the development `npm start`. It keeps the {@link Logger} shape the servers take.
 */
import { pino, type DestinationStream, type Level, type Logger as PinoLogger } from 'pino';
import pretty from 'pino-pretty';
import type { Logger } from './logger.js';

/** The levels `LOG_LEVEL` may name, most severe first. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const satisfies readonly Level[];
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface StructuredLoggerOptions {
  /** `subscribe`, `publish`, `all` or `push`: the `role` field of every line. */
  role: string;
  /** Lowest level written (`LOG_LEVEL`). @default 'info' */
  level?: Level;
  /** Readable lines instead of JSON (the development `npm start`). @default false */
  pretty?: boolean;
  /** Where lines go. @default standard output */
  destination?: DestinationStream;
}

/** A {@link Logger} that can bind fields (a connection or request id) to the lines it writes. */
export interface StructuredLogger extends Logger {
  child(bindings: Record<string, string | number>): StructuredLogger;
}

export function createStructuredLogger(options: StructuredLoggerOptions): StructuredLogger {
  const destination = options.destination ?? (options.pretty ? pretty({ colorize: process.stdout.isTTY === true, sync: true, ignore: 'pid,hostname' }) : pino.destination({ dest: 1, sync: true }));
  const base = pino({ level: options.level ?? 'info', base: { role: options.role }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
  return wrap(base);
}

/** Console-style calls (`warn('herald: …', error)`) onto pino's (`warn({ err }, msg)`). */
function wrap(target: PinoLogger): StructuredLogger {
  const write =
    (level: 'debug' | 'info' | 'warn' | 'error') =>
    (...args: unknown[]): void => {
      // Below LOG_LEVEL: not even the message is built (debug lines are per connection).
      if (!target.isLevelEnabled(level)) return;
      const error = args.find((arg): arg is Error => arg instanceof Error);
      const message = args
        .filter((arg) => arg !== error)
        .map((arg) => (typeof arg === 'string' ? arg : JSON.stringify(arg)))
        .join(' ');
      if (error) target[level]({ err: error }, message || error.message);
      else target[level](message);
    };
  return {
    // Absent below LOG_LEVEL=debug (`Logger.debug`): a caller that would build a line
    // per request or connection sees that and builds nothing.
    ...(target.isLevelEnabled('debug') ? { debug: write('debug') } : {}),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
    child: (bindings) => wrap(target.child(bindings)),
  };
}
