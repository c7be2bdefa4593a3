/**
 * History reads on Redis streams: a page after a position (resume, catch-up), merged
 * from every stream inside the read-after script, and a page before a cursor
 * (`Query.notifications`), pipelined.
 */
import type { Cluster, Redis } from 'ioredis';
import { streamId } from '../common/cursor.js';
import type { Retention } from '../config/index.js';
import { findGap, mergeNewestFirst, type StreamState } from './history.js';
import { unavailable } from '../redis/errors.js';
import type { StreamEntries } from './redis-scripts.js';
import type { Broker, BrokerMessage } from './types.js';

/** The broker's history reads over `client` (on which the scripts are defined). */
export function createRedisHistory(client: Redis | Cluster, retention: Retention): Pick<Broker, 'readAfter' | 'readPage'> {
  return {
    async readAfter({ tenantKey, streams, after, limit, maxBytes }) {
      let reply;
      try {
        reply = await client.heraldReadAfter(1 + streams.length, tenantKey, ...streams, streamId(after), limit, maxBytes ?? Number.MAX_SAFE_INTEGER);
      } catch (error) {
        throw unavailable('history read', error);
      }
      const [epoch, perStream, page, more] = reply;
      const states: StreamState[] = perStream.map(([exists, maxDeletedId]) => ({ exists: exists === 1, maxDeletedId }));
      const reason = findGap(after, epoch ?? undefined, states, Date.now(), retention.maxAgeMs);
      if (reason !== undefined) return { gap: true, reason };
      if (epoch === null) return { gap: false, entries: [], more: false };
      const entries: BrokerMessage[] = [];
      for (let n = 0; n + 1 < page.length; n += 2) entries.push({ id: `${epoch}_${page[n] ?? ''}`, payload: page[n + 1] ?? '' });
      return { gap: false, entries, more: more === 1 };
    },
    async readPage({ tenantKey, streams, before, limit }) {
      let replies: Array<[Error | null, unknown]> | null;
      try {
        const pipeline = client.pipeline().hget(tenantKey, 'epoch');
        for (const stream of streams) pipeline.xrevrange(stream, before ? `(${streamId(before)}` : '+', '-', 'COUNT', limit + 1);
        replies = await pipeline.exec();
      } catch (error) {
        throw unavailable('history read', error);
      }
      const failed = replies?.find(([error]) => error !== null);
      if (!replies || failed) throw unavailable('history read', failed?.[0] ?? 'no reply');
      const [[, epoch], ...perStream] = replies as [[null, string | null], ...Array<[null, StreamEntries]>];
      if (before && epoch !== before.epoch) {
        return { gap: true, reason: 'the cursor is from an earlier notification history; read from the newest' };
      }
      const merged = mergeNewestFirst(perStream.map(([, entries]) => toMessages(epoch ?? '', entries)));
      return { gap: false, entries: merged.slice(0, limit), hasMore: merged.length > limit };
    },
  };
}

function toMessages(epoch: string, entries: StreamEntries): BrokerMessage[] {
  return entries.map(([entryId, fields]) => ({ id: `${epoch}_${entryId}`, payload: fields[1] ?? '' }));
}
