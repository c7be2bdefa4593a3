/**
 * The embedded broker: one process, no Redis. Used by `npm start` without `REDIS_URL`
 * and by fast tests; it keeps history by the same rules as the Redis broker and passes
 * the same contract suite. Its history lives as long as the process: a restart draws a
 * new epoch, so old cursors get a gap, exactly as with a Redis that restarted empty.
 */
import { randomBytes } from 'node:crypto';
import { compareStreamIds, formatCursor, parseCursor, streamId, type Cursor } from '../common/cursor.js';
import { findGap, firstAfter, mergeNewestFirst } from './history.js';
import type { Retention } from '../config/index.js';
import { type Broker, type BrokerMessage, type MessageHandler } from './types.js';
import { BrokerUnavailableError } from '../common/failures.js';
import type { AcceptedEvent } from '../ledger/events.js';

interface Stream {
  /** Oldest first; ids are `ms-seq`. */
  entries: Array<{ entryId: string; ms: number; payload: string }>;
  maxDeletedId: string;
  expiresAt: number;
}

interface Tenant {
  readonly epoch: string;
  ms: number;
  seq: number;
}

export interface InProcessBrokerOptions {
  /** How much history each stream keeps (`HeraldConfig.retention`). */
  retention: Retention;
  /** The clock, in ms since the epoch. @default Date.now */
  now?: () => number;
  /** Where a publish's `ledger` start is recorded (the in-process ledger). @default none: nothing is */
  ledger?: { start(tenant: string, notificationId: string, event: AcceptedEvent): void } | undefined;
}

export function createInProcessBroker(options: InProcessBrokerOptions): Broker {
  const { retention } = options;
  const now = options.now ?? Date.now;
  const channels = new Set<string>();
  const tenants = new Map<string, Tenant>();
  const streams = new Map<string, Stream>();
  const remembered = new Map<string, { value: string; expiresAt: number }>();
  /** Read positions by key (`Namer.readStateKey`), as formatted cursors. */
  const readPositions = new Map<string, string>();
  let handler: MessageHandler | undefined;
  let closed = false;

  const liveStream = (key: string): Stream | undefined => {
    const stream = streams.get(key);
    if (stream && stream.expiresAt <= now()) {
      streams.delete(key);
      return undefined;
    }
    return stream;
  };

  const append = (key: string, entryId: string, ms: number, payload: string): void => {
    const stream = liveStream(key) ?? { entries: [], maxDeletedId: '0-0', expiresAt: 0 };
    streams.set(key, stream);
    stream.entries.push({ entryId, ms, payload });
    const minMs = now() - retention.maxAgeMs;
    while (stream.entries.length > retention.maxLength || (stream.entries[0]?.ms ?? Infinity) < minMs) {
      const trimmed = stream.entries.shift();
      if (trimmed) stream.maxDeletedId = trimmed.entryId;
    }
    stream.expiresAt = now() + retention.maxAgeMs;
  };

  const messages = (epoch: string, key: string, keep: (entryId: string) => boolean): BrokerMessage[] =>
    (liveStream(key)?.entries ?? []).filter((entry) => keep(entry.entryId)).map((entry) => ({ id: `${epoch}_${entry.entryId}`, payload: entry.payload }));

  return {
    listen(next) {
      if (handler) throw new Error('the broker already has a message handler');
      handler = next;
    },
    async subscribe(channel) {
      if (closed) throw new BrokerUnavailableError('the broker is closed');
      channels.add(channel);
    },
    async unsubscribe(channel) {
      channels.delete(channel);
    },
    async publish({ destination, tenantKey, payload, idempotency, ledger }) {
      if (closed) throw new BrokerUnavailableError('the broker is closed');
      const at = now();
      const seen = idempotency ? remembered.get(idempotency.key) : undefined;
      if (seen && seen.expiresAt > at) {
        const [id = '', count = '0'] = seen.value.split(' ');
        return { id, receivedUsers: Number(count), duplicate: true };
      }
      let tenant = tenants.get(tenantKey);
      if (!tenant) {
        tenant = { epoch: randomBytes(6).toString('hex'), ms: 0, seq: 0 };
        tenants.set(tenantKey, tenant);
      }
      tenant.ms = Math.max(tenant.ms, at);
      tenant.seq += 1;
      const entryId = `${tenant.ms}-${tenant.seq}`;
      append(destination.stream, entryId, tenant.ms, payload);
      const id = `${tenant.epoch}_${entryId}`;
      // Before the live delivery, as the Redis script does: the live event appends to it.
      if (ledger) options.ledger?.start(ledger.tenant, id, { ...ledger.event, at });
      const receivedUsers = handler && channels.has(destination.channel) ? handler(destination.channel, { id, payload }) : 0;
      if (idempotency) remembered.set(idempotency.key, { value: `${id} ${receivedUsers}`, expiresAt: at + idempotency.windowMs });
      return { id, receivedUsers, duplicate: false };
    },
    async readAfter({ tenantKey, streams: keys, after, limit, maxBytes }) {
      const epoch = tenants.get(tenantKey)?.epoch;
      const states = keys.map((key) => {
        const stream = liveStream(key);
        return { exists: stream !== undefined, maxDeletedId: stream?.maxDeletedId ?? '0-0' };
      });
      const reason = findGap(after, epoch, states, now(), retention.maxAgeMs);
      if (reason !== undefined) return { gap: true, reason };
      if (epoch === undefined) return { gap: false, entries: [], more: false };
      const afterId = streamId(after);
      return {
        gap: false,
        ...firstAfter(
          keys.map((key) => messages(epoch, key, (id) => compareStreamIds(id, afterId) > 0).slice(0, limit + 1)),
          limit,
          maxBytes,
        ),
      };
    },
    async readPage({ tenantKey, streams: keys, before, limit }) {
      const epoch = tenants.get(tenantKey)?.epoch;
      if (before && epoch !== before.epoch) {
        return { gap: true, reason: 'the cursor is from an earlier notification history; read from the newest' };
      }
      if (epoch === undefined) return { gap: false, entries: [], hasMore: false };
      const beforeId = before ? streamId(before) : undefined;
      const merged = mergeNewestFirst(
        keys.map((key) => messages(epoch, key, (id) => beforeId === undefined || compareStreamIds(id, beforeId) < 0).reverse()),
      );
      return { gap: false, entries: merged.slice(0, limit), hasMore: merged.length > limit };
    },
    async markRead({ key, tenantKey, channel, upTo: asked, payload }) {
      if (closed) throw new BrokerUnavailableError('the broker is closed');
      const tenant = tenants.get(tenantKey);
      if (tenant === undefined || tenant.epoch !== asked.epoch) return { unknownEpoch: asked.epoch };
      // No further than the newest id: a position in the future would read what is not yet sent.
      const newest = { epoch: tenant.epoch, ms: tenant.ms, seq: tenant.seq };
      const atMostNewest = (cursor: Cursor): Cursor => (compareStreamIds(streamId(cursor), streamId(newest)) > 0 ? newest : cursor);
      const upTo = atMostNewest(asked);
      let kept = parseCursor(readPositions.get(key));
      if (kept && kept.epoch === upTo.epoch) {
        kept = atMostNewest(kept);
        readPositions.set(key, formatCursor(kept));
        if (compareStreamIds(streamId(kept), streamId(upTo)) >= 0) return { readUpTo: kept, advanced: false };
      }
      const id = formatCursor(upTo);
      readPositions.set(key, id);
      if (handler && channels.has(channel)) handler(channel, { id, payload });
      return { readUpTo: upTo, advanced: true };
    },
    async signal(channel, id, payload) {
      if (closed) throw new BrokerUnavailableError('the broker is closed');
      if (handler && channels.has(channel)) handler(channel, { id, payload });
    },
    async readPosition(key) {
      if (closed) throw new BrokerUnavailableError('the broker is closed');
      return parseCursor(readPositions.get(key));
    },
    isReady: () => !closed,
    async close() {
      closed = true;
      channels.clear();
    },
  };
}
