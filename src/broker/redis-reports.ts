/**
 * Counting deliveries across subscribe servers (`receivedUsers`), request and response.
 *
 * A counted publish names this process's report channel and a sequence number in its
 * frame. PUBLISH returns how many subscribe-server connections got it; each of them
 * publishes back how many live subscriptions it reached ({@link DeliveryReports.reply}),
 * and the publish resolves with the sum once every one has reported, or once the report
 * timeout passes, counting what arrived.
 *
 * Per notification, neither side arms a timer or sends a message of its own (each was
 * system calls and wake-ups per notification on the one-device-per-user path):
 * every count's timeout is a deadline on one scheduler (one timer for all of them), and a
 * subscribe server sends the reports of one turn of its event loop to each publisher as
 * one PUBLISH.
 */
import { createDeadlineScheduler, type Cancel, type DeadlineScheduler } from '../common/timers.js';
import { formatReport, frameHead, joinReports, parseReports, type Frame } from './redis-frame.js';

export interface DeliveryReportsOptions {
  /** Sends a report: PUBLISH on the publisher connection (SPUBLISH on a Cluster). */
  publish(channel: string, message: string): Promise<unknown>;
  /** This process's report channel, which the subscriber connection listens on. */
  reportChannel: string;
  /** How long a count waits for the reports (`HeraldConfig.deliveryAckTimeoutMs`). */
  timeoutMs: number;
  logger: Pick<Console, 'warn'>;
  /** Where the counts' timeouts are kept. @default one of its own, on Node's timers */
  scheduler?: DeadlineScheduler;
  /** The scheduler's clock, ms since the epoch. @default Date.now */
  now?: () => number;
}

/** One counted publish. */
export interface DeliveryCount {
  /** The head of its frame: this process's report channel and the count's sequence. */
  readonly head: string;
  /** Waits for `receivers` reports (or the timeout) and resolves with the subscriptions reached. */
  delivered(receivers: number): Promise<number>;
  /** Forgets the count; call once, however the publish ended. */
  close(): void;
}

export interface DeliveryReports {
  /** Starts counting one publish. */
  count(): DeliveryCount;
  /** A message on the report channel. */
  onReport(message: string): void;
  /** The subscribe side: reports how many subscriptions `frame` reached, if its publisher counts. */
  reply(frame: Frame, delivered: number): void;
  /** Ends every wait now (the broker is closing), with what arrived. */
  settleAll(): void;
}

interface Pending {
  expected: number | undefined;
  reported: number;
  delivered: number;
  settle: (() => void) | undefined;
}

export function createDeliveryReports({ publish, reportChannel, timeoutMs, logger, ...options }: DeliveryReportsOptions): DeliveryReports {
  const pending = new Map<string, Pending>();
  const scheduler = options.scheduler ?? createDeadlineScheduler();
  const now = options.now ?? Date.now;
  let sequence = 0;
  /**
   * The reports of this turn, by report channel, sent once the frames of the current read
   * are delivered. Bounded by what one read of the subscriber connection holds: a frame
   * is some tens of bytes or more, its report line fewer.
   */
  let outgoing: Map<string, string[]> | undefined;
  const send = (): void => {
    const batches = outgoing;
    outgoing = undefined;
    for (const [replyTo, reports] of batches ?? []) {
      publish(replyTo, joinReports(reports)).catch((error: unknown) => {
        logger.warn(`herald: could not send ${reports.length} delivery reports to ${replyTo}: ${String(error)}`);
      });
    }
  };
  return {
    count() {
      const key = String(++sequence);
      const entry: Pending = { expected: undefined, reported: 0, delivered: 0, settle: undefined };
      pending.set(key, entry);
      let cancel: Cancel | undefined;
      return {
        head: frameHead(reportChannel, key),
        async delivered(receivers) {
          entry.expected = receivers;
          if (entry.reported < receivers) {
            await new Promise<void>((resolve) => {
              entry.settle = resolve;
              cancel = scheduler.runAt(now() + timeoutMs, () => {
                logger.warn(`herald: ${receivers - entry.reported} of ${receivers} subscribe servers did not report deliveries within ${timeoutMs} ms`);
                resolve();
              });
            });
          }
          return entry.delivered;
        },
        close() {
          cancel?.();
          pending.delete(key);
        },
      };
    },
    onReport(message) {
      const { reports, malformed } = parseReports(message);
      if (malformed > 0) logger.warn(`herald: ignored ${malformed} malformed delivery reports on ${reportChannel}`);
      for (const report of reports) {
        const entry = pending.get(report.sequence);
        if (!entry) continue;
        entry.reported += 1;
        entry.delivered += report.delivered;
        if (entry.expected !== undefined && entry.reported >= entry.expected) entry.settle?.();
      }
    },
    reply(frame, delivered) {
      if (frame.replyTo === '') return; // the publisher did not ask for a count
      // The subscriber connection hands over every frame of one read synchronously; the
      // microtask runs once they are all delivered.
      if (outgoing === undefined) {
        outgoing = new Map();
        queueMicrotask(send);
      }
      const batch = outgoing.get(frame.replyTo);
      const report = formatReport(frame.sequence, delivered);
      if (batch === undefined) outgoing.set(frame.replyTo, [report]);
      else batch.push(report);
    },
    settleAll() {
      for (const entry of pending.values()) entry.settle?.();
    },
  };
}
