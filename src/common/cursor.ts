/**
 * Notification ids, which are also resume cursors: `<epoch>_<ms>-<seq>`.
 *
 * `ms-seq` is the Redis stream entry id. The publish script takes `seq` from one counter
 * per tenant and never lets `ms` go backwards, so ids are unique and strictly ordered
 * across all of a tenant's streams: one cursor covers a subscriber's user, store and
 * company streams at once. `epoch` is drawn when a tenant's history is first written;
 * a Redis that restarted empty draws a new one, so an old cursor is recognisably from
 * a history that no longer exists.
 */

export interface Cursor {
  readonly epoch: string;
  readonly ms: number;
  readonly seq: number;
}

/**
 * Where a history read starts: after a cursor, or — for a subscription that has had
 * nothing yet — after a time (ms since the epoch) in whatever history the tenant has now.
 */
export type ReadPosition = Cursor | { readonly epoch: undefined; readonly ms: number; readonly seq: number };

const CURSOR_PATTERN = /^([A-Za-z0-9]{1,32})_(\d{1,15})-(\d{1,15})$/;

export function formatCursor(cursor: Cursor): string {
  return `${cursor.epoch}_${cursor.ms}-${cursor.seq}`;
}

/** Parses a cursor from a client; undefined if it is not one. */
export function parseCursor(value: unknown): Cursor | undefined {
  if (typeof value !== 'string') return undefined;
  const match = CURSOR_PATTERN.exec(value);
  if (!match) return undefined;
  return { epoch: match[1] ?? '', ms: Number(match[2]), seq: Number(match[3]) };
}

/** The Redis stream entry id of a cursor (`ms-seq`). */
export function streamId(cursor: ReadPosition): string {
  return `${cursor.ms}-${cursor.seq}`;
}

/** Orders two stream entry ids (`ms-seq`). */
export function compareStreamIds(a: string, b: string): number {
  const [aMs = 0, aSeq = 0] = a.split('-').map(Number);
  const [bMs = 0, bSeq = 0] = b.split('-').map(Number);
  return aMs - bMs || aSeq - bSeq;
}
