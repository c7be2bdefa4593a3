/**
 * The worker's periodic summary at info (`PUSH_LOG_SUMMARY_MS`): what it did since the
 * last one — sent, dry-run, failed, retried, dead-lettered, devices removed — the
 * stream's lag and the retries pending, one line, written only when something happened.
 */
import { bound, type Logger } from '../common/logger.js';
import type { PushCounters } from './counters.js';
import type { PushLag } from './worker-types.js';

/** The counters a summary reports, as its fields name them. */
const SUMMED = ['sent', 'dryRun', 'failed', 'retried', 'deadLettered', 'devicesRemoved', 'refused'] as const satisfies ReadonlyArray<keyof PushCounters>;

export interface SummaryOptions {
  counters: Readonly<PushCounters>;
  logger: Logger;
  /** The stream's backlog, asked only when there is something to report. */
  lag: () => Promise<PushLag>;
  /** Retries scheduled in the retry sets, asked with the backlog. */
  retriesPending?: () => Promise<number>;
}

/** A function that logs one summary if anything happened since its last call. */
export function createSummary(options: SummaryOptions): () => Promise<void> {
  const { counters, logger } = options;
  let last: Record<string, number> = Object.fromEntries(SUMMED.map((name) => [name, counters[name]]));
  let lastAt = Date.now();
  return async () => {
    const now: Record<string, number> = Object.fromEntries(SUMMED.map((name) => [name, counters[name]]));
    const since: Record<string, number> = Object.fromEntries(SUMMED.map((name) => [name, (now[name] ?? 0) - (last[name] ?? 0)]));
    const seconds = Math.round((Date.now() - lastAt) / 1000);
    last = now;
    lastAt = Date.now();
    if (Object.values(since).every((count) => count === 0)) return;
    let lag: PushLag | undefined;
    let retries: number | undefined;
    try {
      [lag, retries] = await Promise.all([options.lag(), options.retriesPending?.()]);
    } catch {
      lag = undefined; // Redis away: the summary still tells what was done
      retries = undefined;
    }
    const fields = {
      ...since,
      seconds,
      ...(lag === undefined ? {} : { unread: lag.unread ?? -1, pending: lag.pending }),
      ...(retries === undefined ? {} : { retriesPending: retries }),
    };
    bound(logger, fields).info(
      `push: in the last ${seconds} s: ${since['sent']} sent${since['dryRun'] ? ` (and ${since['dryRun']} dry-run)` : ''}, ${since['failed']} failed, ${since['retried']} retried, ${since['deadLettered']} dead-lettered, ${since['devicesRemoved']} devices removed` +
        (lag === undefined ? '' : `; stream: ${lag.unread ?? 'unknown'} unread, ${lag.pending} pending`) +
        (retries === undefined ? '' : `; ${retries} retries pending`),
    );
  };
}
