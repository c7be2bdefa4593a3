/**
 * A user's quiet hours: a daily window of local wall-clock time (`start` to `end`,
 * "HH:MM", across midnight when `end` is earlier than `start`) in an IANA time zone,
 * during which non-critical pushes wait for the window's end. Computed with `Intl`, so
 * daylight-saving changes move the window with the wall clock: a window that ends in a
 * skipped hour ends when the clock jumps past it, one that ends in a repeated hour ends
 * the first time the clock shows its end.
 */
import { InvalidInputError } from '../common/failures.js';

export interface QuietHours {
  /** "HH:MM", 24-hour local time. */
  readonly start: string;
  /** "HH:MM"; earlier than `start`: the window runs across midnight. */
  readonly end: string;
  /** An IANA zone name (`Europe/Paris`). */
  readonly timeZone: string;
}

const HH_MM = /^([01]\d|2[0-3]):([0-5]\d)$/;

/** Minutes since local midnight of "HH:MM"; undefined if it is not one. */
function minutesOf(value: string): number | undefined {
  const match = HH_MM.exec(value);
  return match ? Number(match[1]) * 60 + Number(match[2]) : undefined;
}

/** One formatter per zone: making one costs far more than using it. */
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterOf(timeZone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timeZone);
  if (formatter === undefined) {
    formatter = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', hour: '2-digit', minute: '2-digit' });
    // Bounded by the zones that exist (a few hundred): only valid ones get here.
    formatters.set(timeZone, formatter);
  }
  return formatter;
}

/** Whether `timeZone` is an IANA zone this runtime knows. */
function isTimeZone(timeZone: unknown): timeZone is string {
  if (typeof timeZone !== 'string' || timeZone.length === 0 || timeZone.length > 64) return false;
  try {
    formatterOf(timeZone);
    return true;
  } catch {
    return false;
  }
}

/** Checks a client's quiet hours; `BAD_USER_INPUT` naming the field. */
export function parseQuietHours(input: { readonly start: unknown; readonly end: unknown; readonly timeZone: unknown }): QuietHours {
  const { start, end, timeZone } = input;
  if (typeof start !== 'string' || minutesOf(start) === undefined) throw new InvalidInputError('start must be a time "HH:MM" (00:00 to 23:59)');
  if (typeof end !== 'string' || minutesOf(end) === undefined) throw new InvalidInputError('end must be a time "HH:MM" (00:00 to 23:59)');
  if (start === end) throw new InvalidInputError('end must differ from start');
  if (!isTimeZone(timeZone)) throw new InvalidInputError(`timeZone must be an IANA time zone such as "Europe/Paris"`);
  return { start, end, timeZone };
}

/** Reads stored quiet hours back; undefined if they are not well formed. */
export function readQuietHours(value: unknown): QuietHours | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  try {
    return parseQuietHours(value as QuietHours);
  } catch {
    return undefined;
  }
}

/** The local wall-clock minute of the day at `ms` in `timeZone`. */
function localMinute(timeZone: string, ms: number): number {
  let hour = 0;
  let minute = 0;
  for (const part of formatterOf(timeZone).formatToParts(ms)) {
    if (part.type === 'hour') hour = Number(part.value);
    else if (part.type === 'minute') minute = Number(part.value);
  }
  return hour * 60 + minute;
}

function inside(minute: number, start: number, end: number): boolean {
  return start < end ? minute >= start && minute < end : minute >= start || minute < end;
}

const MINUTE_MS = 60_000;

/**
 * When the quiet hours around `nowMs` end (ms since the epoch), or undefined when
 * `nowMs` is outside them.
 */
export function quietUntil(quietHours: QuietHours, nowMs: number): number | undefined {
  const start = minutesOf(quietHours.start);
  const end = minutesOf(quietHours.end);
  if (start === undefined || end === undefined || start === end) return undefined;
  const zone = quietHours.timeZone;
  const quiet = (ms: number): boolean => inside(localMinute(zone, ms), start, end);
  if (!quiet(nowMs)) return undefined;
  // Zones' offsets are whole minutes: walk on UTC minute boundaries.
  let at = Math.floor(nowMs / MINUTE_MS) * MINUTE_MS;
  // Jump by the wall-clock distance to `end`. An offset that moved back (a repeated
  // hour) lands before it, still quiet: jump again. One that moved forward (a skipped
  // hour) may land past the first minute out of the window: search back for it.
  for (let jumps = 0; jumps < 4; jumps++) {
    const minute = localMinute(zone, at);
    if (!inside(minute, start, end)) return at;
    const next = at + (((end - minute + 1440) % 1440) || 1440) * MINUTE_MS;
    if (!quiet(next)) {
      if (quiet(next - MINUTE_MS)) return next; // no offset change: the usual case
      let low = at / MINUTE_MS; // quiet
      let high = next / MINUTE_MS; // not quiet
      while (high - low > 1) {
        const middle = Math.floor((low + high) / 2);
        if (quiet(middle * MINUTE_MS)) low = middle;
        else high = middle;
      }
      return high * MINUTE_MS;
    }
    at = next;
  }
  return undefined;
}
