/**
 * What travels on Redis Pub/Sub between Herald's processes, written and parsed here only.
 *
 * A notification frame, as the publish script PUBLISHes it on the audience's channel:
 * `<report channel>\n<sequence>\n<id>\n<payload>`. Channel names and ids hold no newline
 * (the payload may). An empty report channel means the publisher counts nothing.
 *
 * A delivery report, which a subscribe server PUBLISHes on the frame's report channel:
 * `<sequence> <delivered>`. A subscribe server sends the reports of one turn of its event
 * loop to one publisher as one message, one report a line (a message per report was a
 * system call per notification); a single report
 * is the same text as before, so a publish server reads old and new subscribe servers
 * alike. An older publish server ignores a message of several lines (its counts wait
 * out the report timeout): upgrade publish servers before subscribe servers.
 */
import type { BrokerMessage } from './types.js';

const SEPARATOR = '\n';

/** A parsed notification frame. */
export interface Frame extends BrokerMessage {
  /** Where to report how many subscriptions the frame reached; '' when nobody counts. */
  readonly replyTo: string;
  /** The publisher's number for this publish, echoed in the report. */
  readonly sequence: string;
}

/** The frame's head, which the publish script puts before the id: `<report channel>\n<sequence>`. */
export function frameHead(replyTo: string, sequence: string): string {
  return `${replyTo}${SEPARATOR}${sequence}`;
}

/** The head of a frame nobody reports deliveries of. */
export const UNCOUNTED_FRAME_HEAD = frameHead('', '0');

/**
 * `text` as a string of its own. V8 cuts a piece of 13 characters or more as a slice that
 * keeps the whole string it was cut from, and a subscription keeps the id of the last
 * notification it was given for as long as it lives: the whole frame with it, one per
 * user on an idle server. Once per message, not per subscriber.
 */
const detached = (text: string): string => Buffer.from(text, 'latin1').toString('latin1');

/** The frame in `message`, or undefined if it is not one. */
export function parseFrame(message: string): Frame | undefined {
  const first = message.indexOf(SEPARATOR);
  const second = message.indexOf(SEPARATOR, first + 1);
  const third = message.indexOf(SEPARATOR, second + 1);
  if (first < 0 || second < 0 || third < 0) return undefined;
  return {
    replyTo: message.slice(0, first),
    sequence: message.slice(first + 1, second),
    id: detached(message.slice(second + 1, third)),
    payload: message.slice(third + 1),
  };
}

export interface Report {
  readonly sequence: string;
  readonly delivered: number;
}

export function formatReport(sequence: string, delivered: number): string {
  return `${sequence} ${delivered}`;
}

/** Several reports (each from {@link formatReport}) as one message. */
export function joinReports(reports: readonly string[]): string {
  return reports.join(SEPARATOR);
}

/**
 * The reports in a message of one or more lines, each line one report; a malformed line
 * is skipped (and counted in `malformed`), the others are read.
 */
export function parseReports(message: string): { reports: Report[]; malformed: number } {
  const reports: Report[] = [];
  let malformed = 0;
  let start = 0;
  while (start <= message.length) {
    let end = message.indexOf(SEPARATOR, start);
    if (end < 0) end = message.length;
    const report = parseReport(message.slice(start, end));
    if (report) reports.push(report);
    else malformed += 1;
    start = end + 1;
  }
  return { reports, malformed };
}

/** The report in `message`, or undefined if it is not one (a count that is not a whole number ≥ 0). */
export function parseReport(message: string): Report | undefined {
  const [sequence = '', count = ''] = message.split(' ');
  const delivered = Number(count);
  if (sequence === '' || count === '' || !Number.isSafeInteger(delivered) || delivered < 0) return undefined;
  return { sequence, delivered };
}
