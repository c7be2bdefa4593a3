/**
 * One shard of the push stream as a worker uses it: every command the worker sends about
 * its entries — reading (on the shard's own blocking reader), claiming, the heartbeat,
 * acknowledging, the lag — on the one key of the shard, so on a Cluster each goes to the
 * shard's master. The worker's bookkeeping (what it holds, who waits) is `worker.ts`'s.
 */
import type { Redis } from 'ioredis';
import type { BlockingConnection } from '../redis/blocking.js';
import { connectionFor, type RedisClient } from '../redis/connect.js';
import { ensurePushGroup } from './queue.js';
import type { ShardLag } from './worker-types.js';

/** An entry as Redis gives it: its id and its fields. */
export type StreamEntry = [id: string, fields: string[]];

type StreamReply = Array<[string, StreamEntry[]]> | null;
type AutoclaimReply = [string, Array<StreamEntry | null>, string[]?];

export interface StreamShardOptions {
  /** The shard's stream key. */
  stream: string;
  group: string;
  /** This worker's consumer name. */
  consumer: string;
  /** Commands. */
  redis: RedisClient;
  /** Only this shard's blocking XREADGROUP. */
  reader: BlockingConnection;
}

export interface StreamShard {
  readonly stream: string;
  /** Creates the group (and the stream) unless it exists. */
  ensureGroup(): Promise<void>;
  /** New entries for this consumer, up to `count`, blocking up to `blockMs`; [] when none came. */
  read(count: number, blockMs: number): Promise<StreamEntry[]>;
  /** Ends a blocked {@link read} at once (it returns nothing); harmless when none is blocked. */
  unblock(): void;
  /**
   * Takes over up to `count` entries idle for `minIdleMs` (XAUTOCLAIM, from where the last
   * call ended). `deleted`: pending ids whose entries were trimmed away; `done`: the scan
   * went round the whole pending list.
   */
  claimIdle(minIdleMs: number, count: number): Promise<{ entries: StreamEntry[]; deleted: number; done: boolean }>;
  /** Claims one entry by id if idle for `minIdleMs`; its fields, or undefined when another consumer has it. */
  claim(id: string, minIdleMs: number): Promise<string[] | undefined>;
  /** Resets the idle time of entries this consumer holds (XCLAIM JUSTID), so no other worker claims them. */
  heartbeat(ids: readonly string[]): Promise<void>;
  /** XACK, then XDEL: the stream holds only work not yet done, so its bound is a backlog bound. */
  acknowledge(id: string): Promise<void>;
  /** Its backlog: unread and pending entries, and how long ago the oldest of each was added. */
  lag(): Promise<ShardLag>;
}

export function createStreamShard(options: StreamShardOptions): StreamShard {
  const { stream, group, consumer, redis, reader } = options;
  /** The blocking connection and its CLIENT ID, for CLIENT UNBLOCK. */
  let blocked: { connection: Redis; id: number } | undefined;
  let cursor = '0-0';
  return {
    stream,
    ensureGroup: () => ensurePushGroup(redis, stream, group),
    async read(count, blockMs) {
      const connection = await reader.acquire();
      try {
        // CLIENT UNBLOCK needs the id of the very connection that blocks.
        if (blocked?.connection !== connection) blocked = { connection, id: Number(await connection.client('ID')) };
        const reply = (await connection.xreadgroup('GROUP', group, consumer, 'COUNT', count, 'BLOCK', blockMs, 'STREAMS', stream, '>')) as StreamReply;
        return reply?.[0]?.[1] ?? [];
      } catch (error) {
        blocked = undefined; // a reconnected reader has a new id
        reader.failed(connection);
        throw error;
      }
    },
    unblock() {
      if (blocked === undefined) return;
      // The command client's connection to the node the reader blocks on.
      const { host, port } = blocked.connection.options;
      const via = connectionFor(redis, stream);
      if (via === undefined || via.options.host !== host || via.options.port !== port) return;
      void via.client('UNBLOCK', blocked.id).catch(() => undefined);
    },
    async claimIdle(minIdleMs, count) {
      const [next, entries, deleted = []] = (await redis.xautoclaim(stream, group, consumer, minIdleMs, cursor, 'COUNT', count)) as AutoclaimReply;
      cursor = next;
      return { entries: entries.filter((entry): entry is StreamEntry => entry !== null), deleted: deleted.length, done: next === '0-0' };
    },
    async claim(id, minIdleMs) {
      const [reply] = (await redis.xclaim(stream, group, consumer, minIdleMs, id)) as Array<StreamEntry | null>;
      return reply === undefined || reply === null ? undefined : reply[1];
    },
    async heartbeat(ids) {
      if (ids.length > 0) await redis.xclaim(stream, group, consumer, 0, ...ids, 'JUSTID');
    },
    async acknowledge(id) {
      await redis.multi().xack(stream, group, id).xdel(stream, id).exec();
    },
    async lag() {
      const groups = (await redis.xinfo('GROUPS', stream)) as unknown[][];
      for (const entry of groups) {
        const fields = new Map<string, unknown>();
        for (let i = 0; i + 1 < entry.length; i += 2) fields.set(String(entry[i]), entry[i + 1]);
        if (fields.get('name') !== group) continue;
        const lag = fields.get('lag');
        const pending = Number(fields.get('pending') ?? 0);
        const lastDelivered = String(fields.get('last-delivered-id') ?? '0-0');
        // the oldest pending entry (XPENDING's smallest id) and the oldest not yet read (the first after the group's last delivered)
        const [summary, unread] = await Promise.all([
          pending > 0 ? (redis.xpending(stream, group) as Promise<[number, string | null, string | null, unknown]>) : undefined,
          redis.xrange(stream, `(${lastDelivered}`, '+', 'COUNT', 1),
        ]);
        const now = Date.now();
        return {
          stream,
          unread: typeof lag === 'number' ? lag : null,
          pending,
          oldestPendingAgeMs: ageOf(summary?.[1] ?? undefined, now),
          oldestUnreadAgeMs: ageOf(unread[0]?.[0], now),
        };
      }
      return { stream, unread: null, pending: 0, oldestPendingAgeMs: null, oldestUnreadAgeMs: null };
    },
  };
}

/** How long ago a stream id's entry was added (its id's milliseconds), or null for none. */
function ageOf(id: string | undefined, now: number): number | null {
  if (id === undefined) return null;
  const ms = Number(id.slice(0, id.indexOf('-')));
  return Number.isFinite(ms) ? Math.max(0, now - ms) : null;
}
