/**
 * Counting deliveries across subscribe servers (`receivedUsers`), request and response.
 *
 * A counted publish names this process's report channel and a sequence number in its
 * frame. PUBLISH returns how many subscribe-server connections got it; each of them
 * publishes back how many live subscriptions it reached ({@link DeliveryReports.reply}),
 * and the publish resolves with the sum once every one has reported, or once the report
 * timeout passes, counting what arrived.
 */
import { formatReport, frameHead, parseReport, type Frame } from './redis-frame.js';

export interface DeliveryReportsOptions {
  /** Sends a report: PUBLISH on the publisher connection (SPUBLISH on a Cluster). */
  publish(channel: string, message: string): Promise<unknown>;
  /** This process's report channel, which the subscriber connection listens on. */
  reportChannel: string;
  /** How long a count waits for the reports (`HeraldConfig.deliveryAckTimeoutMs`). */
  timeoutMs: number;
  logger: Pick<Console, 'warn'>;
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

export function createDeliveryReports({ publish, reportChannel, timeoutMs, logger }: DeliveryReportsOptions): DeliveryReports {
  const pending = new Map<string, Pending>();
  let sequence = 0;
  return {
    count() {
      const key = String(++sequence);
      const entry: Pending = { expected: undefined, reported: 0, delivered: 0, settle: undefined };
      pending.set(key, entry);
      let timer: NodeJS.Timeout | undefined;
      return {
        head: frameHead(reportChannel, key),
        async delivered(receivers) {
          entry.expected = receivers;
          if (entry.reported < receivers) {
            await new Promise<void>((resolve) => {
              entry.settle = resolve;
              timer = setTimeout(() => {
                logger.warn(`herald: ${receivers - entry.reported} of ${receivers} subscribe servers did not report deliveries within ${timeoutMs} ms`);
                resolve();
              }, timeoutMs);
            });
          }
          return entry.delivered;
        },
        close() {
          clearTimeout(timer);
          pending.delete(key);
        },
      };
    },
    onReport(message) {
      const report = parseReport(message);
      const entry = report && pending.get(report.sequence);
      if (!report || !entry) return;
      entry.reported += 1;
      entry.delivered += report.delivered;
      if (entry.expected !== undefined && entry.reported >= entry.expected) entry.settle?.();
    },
    reply(frame, delivered) {
      if (frame.replyTo === '') return; // the publisher did not ask for a count
      publish(frame.replyTo, formatReport(frame.sequence, delivered)).catch((error: unknown) => {
        logger.warn(`herald: could not report ${delivered} deliveries of ${frame.id}: ${String(error)}`);
      });
    },
    settleAll() {
      for (const entry of pending.values()) entry.settle?.();
    },
  };
}
