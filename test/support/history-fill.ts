/**
 * Writes a tenant's history straight into Redis, in the layout the publish script
 * writes (`src/broker/redis-scripts.ts`: the tenant hash's `epoch`/`ms`/`seq`, one
 * stream per audience with entry id `<ms>-<seq>` and field `n`, names from
 * `src/names`), through pipelined XADDs: tens of thousands of notifications in well
 * under a second, where the publish path takes one script call each. For tests and
 * benchmarks that need a deep history, not for what the publish path itself does.
 */
import type { Redis } from 'ioredis';
import { encodeNotification, type Audience } from '../../src/common/notification.js';
import { createNamer } from '../../src/names/index.js';

export interface HistoryFillOptions {
  /** `CHANNEL_PREFIX`. @default 'herald' */
  prefix?: string;
  tenant: string;
  /** The audiences written to, each an `[audience, to]` pair (a store's id, a user's name…). */
  destinations: ReadonlyArray<readonly [Audience, string]>;
  /** Notifications in all. */
  count: number;
  /**
   * Which destination the `n`th notification goes to (0-based), as an index into
   * `destinations`. @default round robin
   */
  pick?: (n: number) => number;
  /** Each notification's text. @default `note <n>` */
  text?: (n: number) => string;
}

export interface FilledHistory {
  /** A cursor just before the first notification written (a resume from it reads them all). */
  readonly since: string;
  /** The ids written, oldest first. */
  readonly ids: readonly string[];
}

/** Entries per pipeline sent. */
const BATCH = 2000;

export async function fillHistory(redis: Redis, options: HistoryFillOptions): Promise<FilledHistory> {
  const namer = createNamer(options.prefix ?? 'herald');
  const tenantKey = namer.tenantKey(options.tenant);
  const streams = options.destinations.map(([audience, to]) => namer.destination(options.tenant, audience, to).stream);
  const pick = options.pick ?? ((n: number) => n % streams.length);
  const text = options.text ?? ((n: number) => `note ${n}`);
  await redis.hsetnx(tenantKey, 'epoch', `fill${Date.now().toString(36)}`);
  const epoch = (await redis.hget(tenantKey, 'epoch')) ?? '';
  const firstSeq = Number((await redis.hget(tenantKey, 'seq')) ?? '0') + 1;
  const ms = Math.max(Date.now(), Number((await redis.hget(tenantKey, 'ms')) ?? '0'));
  const timestamp = Math.floor(ms / 1000);
  const ids: string[] = [];
  for (let start = 0; start < options.count; start += BATCH) {
    const pipeline = redis.pipeline();
    for (let n = start; n < Math.min(options.count, start + BATCH); n++) {
      const stream = streams[pick(n)];
      if (stream === undefined) throw new Error(`pick(${n}) is not a destination's index`);
      const entryId = `${ms}-${firstSeq + n}`;
      const audience = options.destinations[pick(n)]?.[0] ?? 'STORE';
      pipeline.xadd(stream, entryId, 'n', encodeNotification({ text: text(n), timestamp, audience, sender: 'fill' }));
      ids.push(`${epoch}_${entryId}`);
    }
    const failed = (await pipeline.exec())?.find(([error]) => error !== null);
    if (failed) throw new Error(`history fill: ${String(failed[0])}`);
  }
  await redis.hset(tenantKey, 'ms', ms, 'seq', firstSeq + options.count - 1);
  return { since: `${epoch}_${ms}-${firstSeq - 1}`, ids };
}
