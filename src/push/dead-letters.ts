/**
 * Pushes given up on — out of attempts, refused for good, or left with an unknown outcome
 * by a worker that died mid-send — kept in a Redis stream for an operator to read and
 * replay (`src/replay.ts`). One record per (notification, device).
 *
 * Replaying puts a `device` entry back on the push stream, marked as a replay: the worker
 * sends it unless the send marker says it was sent meanwhile.
 */
import type { RedisClient } from '../redis/connect.js';
import { isValidName } from '../names/index.js';
import { DEVICE_KINDS, type DeviceKind } from './devices.js';
import { parsePushNotification, readJsonField, type PushNotification } from './entry.js';
import type { PushKeys } from './keys.js';
import type { PushQueue } from './queue.js';

export interface DeadLetterRecord {
  readonly notification: PushNotification;
  readonly user: string;
  readonly deviceId: string;
  readonly kind: DeviceKind;
  /** Why it was given up on: the last error, or that the outcome is unknown. */
  readonly reason: string;
  /** Attempts made (0 when the outcome is unknown). */
  readonly attempts: number;
  /** When it was given up on, ms since the epoch. */
  readonly failedAt: number;
}

export interface DeadLetter extends DeadLetterRecord {
  /** Its id in the dead-letter stream. */
  readonly id: string;
}

export interface DeadLettersOptions {
  /** A connection for commands. */
  redis: RedisClient;
  keys: PushKeys;
  /** Where replays go. */
  queue: PushQueue;
  /**
   * About how many records are kept (`PUSH_DEAD_LETTER_MAX_LENGTH`), oldest dropped first
   * (`MAXLEN ~`, up to one stream node more).
   * @default 100000
   */
  maxLength?: number;
}

export interface DeadLetters {
  add(record: DeadLetterRecord): Promise<void>;
  /** Up to `count` records, oldest first, after the record id `after` (exclusive). */
  list(count: number, after?: string): Promise<DeadLetter[]>;
  /** How many records there are. */
  size(): Promise<number>;
  /**
   * Puts up to `count` records (oldest first), or exactly the records `ids`, back on the
   * push stream and removes them here, telling `onReplayed` of each. Resolves with how
   * many were replayed.
   */
  replay(selection: { count: number } | { ids: readonly string[] }, onReplayed?: (letter: DeadLetter) => void): Promise<number>;
}

export function createDeadLetters(options: DeadLettersOptions): DeadLetters {
  const { redis, keys, queue } = options;
  const maxLength = options.maxLength ?? 100_000;
  const list = async (count: number, after?: string): Promise<DeadLetter[]> => {
    const start = after === undefined ? '-' : `(${after}`;
    const entries = await redis.xrange(keys.deadLetters, start, '+', 'COUNT', count);
    return entries.flatMap(([id, fields]) => {
      const record = decodeDeadLetter(fields);
      return record === undefined ? [] : [{ ...record, id }];
    });
  };
  const replayOne = async (letter: DeadLetter): Promise<void> => {
    // re-queued first, removed second: a crash in between replays it twice, and the
    // send marker turns the second into nothing
    await queue.add({
      notification: letter.notification,
      policy: 'ALWAYS',
      target: { kind: 'device', user: letter.user, deviceId: letter.deviceId },
      queuedAt: Date.now(),
      replay: true,
    });
    await redis.xdel(keys.deadLetters, letter.id);
  };
  return {
    async add(record) {
      await redis.xadd(keys.deadLetters, 'MAXLEN', '~', maxLength, '*', 'd', JSON.stringify(record));
    },
    list,
    size: () => redis.xlen(keys.deadLetters),
    async replay(selection, onReplayed) {
      let letters: DeadLetter[];
      if ('ids' in selection) {
        letters = [];
        for (const id of selection.ids) {
          const [entry] = await redis.xrange(keys.deadLetters, id, id);
          const record = entry === undefined ? undefined : decodeDeadLetter(entry[1]);
          if (record !== undefined) letters.push({ ...record, id });
        }
      } else {
        letters = await list(selection.count);
      }
      for (const letter of letters) {
        await replayOne(letter);
        onReplayed?.(letter);
      }
      return letters.length;
    },
  };
}

function decodeDeadLetter(fields: readonly string[]): DeadLetterRecord | undefined {
  const value = readJsonField(fields, 'd');
  if (value === undefined) return undefined;
  const { notification, user, deviceId, kind, reason, attempts, failedAt } = value;
  const parsed = parsePushNotification(notification);
  if (parsed === undefined || !isValidName(user) || typeof deviceId !== 'string') return undefined;
  if (!DEVICE_KINDS.includes(kind as DeviceKind) || typeof reason !== 'string') return undefined;
  if (typeof attempts !== 'number' || typeof failedAt !== 'number') return undefined;
  return { notification: parsed, user, deviceId, kind: kind as DeviceKind, reason, attempts, failedAt };
}
