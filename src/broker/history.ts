/**
 * History rules both brokers share: when a read after a cursor has a gap, and how
 * entries of several streams merge into one sequence.
 */
import { compareStreamIds, streamId, type ReadPosition } from '../common/cursor.js';
import type { BrokerMessage } from './types.js';

/** What a broker knows of one stream when it reads after a cursor. */
export interface StreamState {
  readonly exists: boolean;
  /** The newest entry id ever trimmed from the stream (`ms-seq`), `0-0` if none. */
  readonly maxDeletedId: string;
}

/**
 * Why entries after `after` may be missing, or undefined when nothing is: the epoch
 * changed (history lost), an entry after the cursor was trimmed, or a stream expired
 * while the cursor was older than the age limit. A position without an epoch (a time)
 * takes whatever history there is now: only trimming past it is a gap.
 */
export function findGap(
  after: ReadPosition,
  epoch: string | undefined,
  streams: readonly StreamState[],
  now: number,
  maxAgeMs: number,
): string | undefined {
  if (after.epoch !== undefined) {
    if (epoch === undefined) return 'the notification history was lost (Redis restarted empty); reload and subscribe without a cursor';
    if (epoch !== after.epoch) return 'the cursor is from an earlier notification history; reload and subscribe without a cursor';
  }
  const afterId = streamId(after);
  for (const stream of streams) {
    if (compareStreamIds(stream.maxDeletedId, afterId) > 0) {
      return 'notifications after the cursor were trimmed (HISTORY_MAX_LENGTH / HISTORY_MAX_AGE_SECONDS); reload';
    }
    if (!stream.exists && after.ms < now - maxAgeMs) {
      return 'the cursor is older than the history kept (HISTORY_MAX_AGE_SECONDS); reload';
    }
  }
  return undefined;
}

/**
 * The first `limit` entries of per-stream lists (each oldest first, each holding at
 * least the first `limit + 1` of its stream after the position, or all of them), merged
 * into one page that ends with the entry whose payload reaches `maxBytes`, and whether
 * more follow its last.
 */
export function firstAfter(
  lists: ReadonlyArray<readonly BrokerMessage[]>,
  limit: number,
  maxBytes = Number.POSITIVE_INFINITY,
): { entries: BrokerMessage[]; more: boolean } {
  const merged = lists.flat().sort((a, b) => compareIds(a.id, b.id));
  let count = 0;
  for (let bytes = 0; count < Math.min(limit, merged.length) && bytes < maxBytes; count++) bytes += Buffer.byteLength(merged[count]?.payload ?? '');
  return { entries: merged.slice(0, count), more: merged.length > count };
}

/** Merges per-stream lists (each newest first) into one, newest first. */
export function mergeNewestFirst(lists: ReadonlyArray<readonly BrokerMessage[]>): BrokerMessage[] {
  return lists.flat().sort((a, b) => compareIds(b.id, a.id));
}

/** Orders two message ids of one epoch (`<epoch>_<ms>-<seq>`). */
export function compareIds(a: string, b: string): number {
  return compareStreamIds(a.slice(a.indexOf('_') + 1), b.slice(b.indexOf('_') + 1));
}
