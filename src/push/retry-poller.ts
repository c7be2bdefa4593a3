/**
 * Each worker's retry poller: every `pollMs` it claims, shard after shard, the retries
 * due by its clock (`retry-set.ts`), as many as it has room for, and hands each to
 * {@link processRetry}. While it holds a member it renews the member's lease every third
 * of the lease, like the stream heartbeat, so a send that runs long under load never lets
 * another worker claim the member mid-send (which would find the send marker held and
 * dead-letter the push as "outcome unknown").
 *
 * On stop it claims nothing more; retries waiting for a send slot give themselves back
 * (`retry-send.ts`), sends in flight finish, and the caller awaits them (`track`).
 */
import type { Logger } from '../common/logger.js';
import type { FanoutDeps } from './fanout-deps.js';
import type { HeldRetry } from './retry-set.js';
import { processRetry } from './retry-send.js';
import type { Sleeper } from './sleeper.js';

export interface RetryPollerOptions {
  readonly deps: FanoutDeps;
  /** Shards of the push stream (and so of the retry sets). */
  readonly shards: number;
  /** How often it looks for due retries, in ms. */
  readonly pollMs: number;
  /** How long a claimed retry is its own before another worker may claim it, in ms. */
  readonly leaseMs: number;
  /** How many more sends the worker has room for now. */
  readonly room: () => number;
  /** Keeps a task until it ends, so that the worker's stop waits for it. */
  readonly track: (task: Promise<void>) => void;
  /** The worker's waits, ended when it stops. */
  readonly sleeper: Sleeper;
  readonly logger: Logger;
}

export interface RetryPoller {
  /** Retries this worker holds now. */
  readonly held: number;
  /** Polls until the worker's signal aborts. */
  run(): Promise<void>;
  /** Renews the leases of what it holds (called every third of the lease). */
  renew(): Promise<void>;
}

export function createRetryPoller(options: RetryPollerOptions): RetryPoller {
  const { deps, leaseMs, logger } = options;
  const held = new Map<string, HeldRetry>();
  const claimOnce = async (): Promise<void> => {
    for (let shard = 0; shard < options.shards && !deps.signal.aborted; shard++) {
      const room = options.room() - held.size;
      if (room <= 0) return;
      const claimed = await deps.retries.claimDue(shard, Math.floor(deps.now()), leaseMs, room);
      for (const retry of claimed) {
        const key = `${shard}/${retry.member}`;
        const mine = held.get(key);
        if (mine !== undefined) {
          mine.leaseUntil = retry.leaseUntil; // its lease ran out while this worker held it: held again
          continue;
        }
        held.set(key, retry);
        options.track(processRetry(deps, retry).finally(() => held.delete(key)));
      }
    }
  };
  return {
    get held() {
      return held.size;
    },
    async run() {
      while (await options.sleeper.sleep(options.pollMs)) {
        try {
          await claimOnce();
        } catch (error) {
          if (!deps.signal.aborted) logger.error(`push: claiming due retries failed: ${error instanceof Error ? error.message : String(error)}`);
        }
      }
    },
    async renew() {
      if (held.size === 0) return;
      const until = Math.floor(deps.now()) + leaseMs;
      const byShard = new Map<number, HeldRetry[]>();
      for (const retry of held.values()) byShard.set(retry.shard, [...(byShard.get(retry.shard) ?? []), retry]);
      await Promise.all(
        [...byShard].map(([shard, retries]) =>
          deps.retries.renew(shard, retries, until).catch((error: unknown) => {
            logger.error(`push: renewing the leases of held retries failed: ${error instanceof Error ? error.message : String(error)}`);
          }),
        ),
      );
    },
  };
}
