/**
 * The position: the id of the last notification handed to the app, per user, kept in
 * `storage` so a reload resumes after it. It is also the dedupe: a notification reaches
 * the app only if its id is after the position. Ids are Herald cursors,
 * `<epoch>_<ms>-<seq>`, ordered by (ms, seq) within one epoch; a different epoch means the
 * server's history started again (Redis lost it) — a gap, not a repeat.
 */
import type { KeyValueStorage } from './types.js';

export interface NotificationId {
  readonly epoch: string;
  readonly ms: number;
  readonly seq: number;
}

const ID_PATTERN = /^([A-Za-z0-9]{1,32})_(\d{1,15})-(\d{1,15})$/;

/** Parses a Herald notification id; undefined if it is not one. */
function parseNotificationId(id: string): NotificationId | undefined {
  const match = ID_PATTERN.exec(id);
  if (!match) return undefined;
  return { epoch: match[1] ?? '', ms: Number(match[2]), seq: Number(match[3]) };
}

/**
 * Orders two ids of one epoch: negative, zero or positive like a comparator; `undefined`
 * when they are of different epochs (or either is not an id), which have no order.
 */
export function compareNotificationIds(a: string, b: string): number | undefined {
  const left = parseNotificationId(a);
  const right = parseNotificationId(b);
  if (!left || !right || left.epoch !== right.epoch) return undefined;
  return left.ms - right.ms || left.seq - right.seq;
}

/** What to do with an arriving notification. */
export type Verdict =
  /** After the position: deliver it (the position moved to it). */
  | 'deliver'
  /** At or before the position: already delivered, drop it. */
  | 'repeat'
  /** Of another history epoch: deliver it, and report a gap (the position moved to it). */
  | 'deliver-after-gap';

export interface Position {
  /** The last delivered id, if any. */
  readonly current: string | undefined;
  /** Judges `id` and, unless it is a repeat, moves the position to it and persists it. */
  accept(id: string): Verdict;
}

/** Memory storage, for Node and wherever `localStorage` is missing. */
export function createMemoryStorage(): KeyValueStorage {
  const items = new Map<string, string>();
  return { getItem: (key) => items.get(key) ?? null, setItem: (key, value) => void items.set(key, value) };
}

/** The storage key of `userName`'s position. */
export function positionKey(userName: string): string {
  return `herald:position:${userName}`;
}

/**
 * The position of `userName`, read once from `storage`. Judged against the copy in memory
 * (not re-read): tabs that share `localStorage` each dedupe what they themselves delivered.
 * A storage that throws (quota, privacy mode) leaves the position in memory only.
 */
export function createPosition(storage: KeyValueStorage, userName: string): Position {
  const key = positionKey(userName);
  let current: string | undefined;
  try {
    const stored = storage.getItem(key);
    current = stored !== null && parseNotificationId(stored) ? stored : undefined;
  } catch {
    current = undefined;
  }
  const moveTo = (id: string): void => {
    current = id;
    try {
      storage.setItem(key, id);
    } catch {
      // Kept in memory: this session still delivers exactly once; only a reload loses it.
    }
  };
  return {
    get current() {
      return current;
    },
    accept(id) {
      if (current === undefined) {
        if (parseNotificationId(id)) moveTo(id);
        return 'deliver';
      }
      if (!parseNotificationId(id)) return 'deliver';
      const order = compareNotificationIds(id, current);
      if (order === undefined) {
        moveTo(id);
        return 'deliver-after-gap';
      }
      if (order <= 0) return 'repeat';
      moveTo(id);
      return 'deliver';
    },
  };
}
