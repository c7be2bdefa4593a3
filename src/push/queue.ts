/**
 * Writing to the push stream. The publish path calls {@link PushQueue.enqueue} once per
 * notification that may need a push (not for a `WHEN_OFFLINE` one whose count shows it
 * reached its user live) — one XADD, whatever the audience: a topic's followers are
 * expanded by a worker, never on the publish path. On one node or behind Sentinel the
 * publish script writes that entry itself ({@link PushQueue.scripted}): atomic with the
 * publish, and no round trip of its own.
 *
 * The stream is bounded: workers XDEL an entry once they have acknowledged it, so it
 * only holds work not yet done, and XADD trims it to about `maxLength` entries. Past
 * that (workers down for long), the oldest entries are dropped; a worker that then
 * meets their ids among its pending ones counts them as `lost`.
 *
 * An entry goes to its tenant's shard of the stream (`keys.ts`). With
 * `minReplicasAcked`, the XADD is followed by a WAIT on the same connection, and an entry
 * the replicas did not acknowledge is an error: a failover could lose it, and the caller
 * answers so that the publisher retries.
 */
import type { ScriptedPush } from '../broker/types.js';
import type { RedisClient } from '../redis/connect.js';
import { encodePushEntry, type PushEntry, type PushNotification, type PushPolicy } from './entry.js';
import type { PushKeys } from './keys.js';

export interface PushQueueOptions {
  /** A client for commands. */
  redis: RedisClient;
  keys: PushKeys;
  /**
   * `REDIS_MIN_REPLICAS_ACKED`: replicas that must have each entry before `add` resolves.
   * @default 0
   */
  minReplicasAcked?: number;
  /** How long WAIT waits for them, in ms; under the command timeout. @default 1000 */
  waitTimeoutMs?: number;
  /**
   * About how many entries the stream holds (`PUSH_STREAM_MAX_LENGTH`): XADD trims with
   * `MAXLEN ~`, which may keep up to one stream node (100 entries) more.
   * @default 1000000
   */
  maxLength?: number;
  /** The clock, ms since the epoch. @default Date.now */
  now?: () => number;
}

export interface PushQueue {
  /**
   * Adds a notification to the push stream, addressed to its user or topic; nothing for
   * `NEVER`. Resolves with the stream entry id, or undefined when nothing was added.
   */
  enqueue(notification: PushNotification, policy: PushPolicy): Promise<string | undefined>;
  /** Adds an entry as it is (a worker's follower pages, an operator's replay). */
  add(entry: PushEntry): Promise<string>;
  /**
   * The entry {@link PushQueue.enqueue} would add for `notification`, for the publish
   * script to write once it has made the id (`PublishRequest.push`); undefined for
   * `NEVER`, and when the stream is sharded (a Cluster: no shard is in the tenant's slot),
   * where the entry is enqueued after the publish.
   */
  scripted(notification: Omit<PushNotification, 'id'>, policy: PushPolicy, when: ScriptedPush['when']): ScriptedPush | undefined;
}

/** Stands for the id in an entry's JSON until the publish script writes the real one. */
const ID_MARK = '\u0000';
/** The JSON of an entry up to its id: the id is the first value of the first key. */
const ENTRY_HEAD = '{"notification":{"id":"';

export function createPushQueue(options: PushQueueOptions): PushQueue {
  const { redis, keys } = options;
  const maxLength = options.maxLength ?? 1_000_000;
  const now = options.now ?? Date.now;
  const minReplicasAcked = options.minReplicasAcked ?? 0;
  const waitTimeoutMs = options.waitTimeoutMs ?? 1000;
  const add = async (entry: PushEntry): Promise<string> => {
    const stream = keys.streams[keys.shardOf(entry.notification.tenant)] ?? '';
    const fields = encodePushEntry(entry);
    if (minReplicasAcked === 0) {
      const id = await redis.xadd(stream, 'MAXLEN', '~', maxLength, '*', ...fields);
      if (id === null) throw new Error('XADD to the push stream returned no id');
      return id;
    }
    // One pipeline: on a Cluster the keyless WAIT goes to the stream's master with the XADD.
    const [[addError, id] = [], [waitError, acked] = []] = (await redis.pipeline().xadd(stream, 'MAXLEN', '~', maxLength, '*', ...fields).wait(minReplicasAcked, waitTimeoutMs).exec()) ?? [];
    if (addError) throw addError;
    if (typeof id !== 'string') throw new Error('XADD to the push stream returned no id');
    if (waitError) throw waitError;
    if (Number(acked) < minReplicasAcked) {
      throw new Error(`only ${Number(acked)} of ${minReplicasAcked} replicas acknowledged the push entry within ${waitTimeoutMs} ms: a failover could lose it`);
    }
    return id;
  };
  const entryOf = (notification: PushNotification, policy: PushEntry['policy']): PushEntry => ({
    notification,
    policy,
    target: notification.audience === 'TOPIC' ? { kind: 'topic', topic: notification.to } : { kind: 'user', user: notification.to },
    queuedAt: now(),
  });
  return {
    add,
    async enqueue(notification, policy) {
      if (policy === 'NEVER') return undefined;
      return add(entryOf(notification, policy));
    },
    scripted(notification, policy, when) {
      if (policy === 'NEVER' || keys.streams.length !== 1) return undefined;
      // `id` first, so the mark's first appearance is the id (the text may hold one too).
      const [, json = ''] = encodePushEntry(entryOf({ id: ID_MARK, ...notification }, policy));
      const mark = JSON.stringify(ID_MARK).slice(1, -1);
      if (json.indexOf(mark) !== ENTRY_HEAD.length) throw new Error('a push entry did not start with its notification id');
      return { stream: keys.streams[0] ?? '', maxLength, head: ENTRY_HEAD, tail: json.slice(ENTRY_HEAD.length + mark.length), when };
    },
  };
}

/** Creates the workers' consumer group (and the stream) on `stream` unless it exists. */
export async function ensurePushGroup(redis: RedisClient, stream: string, group: string): Promise<void> {
  try {
    // from 0: entries published before any worker ever started are not skipped
    await redis.xgroup('CREATE', stream, group, '0', 'MKSTREAM');
  } catch (error) {
    if (!(error instanceof Error && error.message.startsWith('BUSYGROUP'))) throw error;
  }
}
