/**
 * Push workers for tests, each on its own two Redis connections (commands, blocking
 * reads) like a real worker process; {@link PushRig.stopAll} stops them and closes what
 * they used.
 */
import type { Redis } from 'ioredis';
import { createDeadLetters, type DeadLetters } from '../../src/push/dead-letters.js';
import { createDeviceStore, type DeviceStore } from '../../src/push/devices.js';
import { createPushKeys, type PushKeys } from '../../src/push/keys.js';
import { createPushQueue, type PushQueue } from '../../src/push/queue.js';
import { createSeenLive, type SeenLive } from '../../src/push/seen-live.js';
import type { DeviceSenders } from '../../src/push/senders/types.js';
import { createTopicStore, type TopicStore } from '../../src/push/topics.js';
import { localNetworkPolicy } from './push-servers.js';
import { createPushWorker, type PushWorker, type PushWorkerOptions } from '../../src/push/worker.js';
import type { RedisServer } from './redis-server.js';
import { PATIENCE_MS } from './patience.js';

export const quietLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };

export interface PushRig {
  readonly keys: PushKeys;
  readonly redis: Redis;
  readonly devices: DeviceStore;
  readonly topics: TopicStore;
  readonly queue: PushQueue;
  readonly deadLetters: DeadLetters;
  readonly seenLive: SeenLive;
  /** Starts a worker with `senders` and test-sized timings unless `options` say otherwise. */
  startWorker(senders: DeviceSenders, options?: Partial<PushWorkerOptions>): Promise<PushWorker>;
  /** Entries not done, on every shard: workers delete an entry from the stream once they acknowledge it. */
  backlog(): Promise<number>;
  stopAll(): Promise<void>;
}

/** The push stream of a one-shard layout (one node, Sentinel): its only shard. */
export function theStream(keys: PushKeys): string {
  const [stream] = keys.streams;
  if (stream === undefined || keys.streams.length !== 1) throw new Error(`the push stream has ${keys.streams.length} shards, not one`);
  return stream;
}

/**
 * A rig on `server` whose keys all start with `prefix` (one prefix per test keeps tests
 * apart); `streamShards` cuts the push stream as a Cluster deployment does.
 */
export function createPushRig(server: RedisServer, prefix: string, streamShards = 1): PushRig {
  const keys = createPushKeys(prefix, { streamShards });
  const redis = server.client();
  const queue = createPushQueue({ redis, keys });
  const workers: PushWorker[] = [];
  return {
    keys,
    redis,
    // the stand-ins of push-servers.ts listen on 127.0.0.1
    devices: createDeviceStore({ redis, keys, allowInsecureUrls: true, networkPolicy: localNetworkPolicy }),
    topics: createTopicStore({ redis, keys }),
    queue,
    deadLetters: createDeadLetters({ redis, keys, queue }),
    seenLive: createSeenLive({ redis, keys }),
    async startWorker(senders, options = {}) {
      const worker = createPushWorker({
        redis: server.client(),
        readers: keys.streams.map(() => server.client()),
        keys,
        senders,
        claimIdleMs: 2000,
        offlineGraceMs: 0,
        retryWindowMs: 100,
        retryPollMs: 20,
        logger: quietLogger,
        ...options,
      });
      workers.push(worker);
      await worker.start();
      return worker;
    },
    backlog: async () => (await Promise.all(keys.streams.map((stream) => redis.xlen(stream)))).reduce((sum, length) => sum + length, 0),
    async stopAll() {
      await Promise.all(workers.splice(0).map((worker) => worker.stop()));
    },
  };
}

/** Polls `condition` every 10 ms until it holds; fails after `timeoutMs` naming `what`. */
export async function eventually(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = PATIENCE_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** How many times each value occurs, only those occurring more than once. */
export function duplicates(values: readonly string[]): Record<string, number> {
  const counts = new Map<string, number>();
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
  return Object.fromEntries([...counts].filter(([, count]) => count > 1));
}
