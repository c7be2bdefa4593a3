/**
 * Which of the entries a worker holds it works on: at most `perTenant` of one tenant at
 * once, the tenant's next ones waiting in arrival order (without it, one tenant's hundred
 * entries at a dead webhook held every slot of the worker, and no other tenant's entry
 * was even read).
 *
 * When the worker holds more than it may, {@link TenantAdmission.letGo} picks the entry
 * to give up: the newest waiting one of the tenant with the most waiting. The worker
 * leaves it pending in Redis and it is remembered here by id only (a few dozen bytes),
 * so that it is taken back as soon as its tenant has room ({@link TenantAdmission.takeBack})
 * rather than only after the claim idle time. At most `maxLetGo` ids are remembered;
 * past that an entry is left for the claim loop (any worker's, once idle).
 *
 * Pure bookkeeping, no Redis: the worker starts, reads and claims.
 */
import type { PushEntry } from './entry.js';

/** An entry read and held, not yet started. */
export interface HeldEntry {
  readonly id: string;
  readonly entry: PushEntry;
  /** Claimed from another worker (or re-read): markers of this entry may be left from before. */
  readonly redelivered: boolean;
}

/** An entry let go: its id, when, and how it had been delivered. */
export interface LetGoEntry {
  readonly id: string;
  readonly tenant: string;
  /** When it was let go (ms, the worker's clock). */
  readonly at: number;
  readonly redelivered: boolean;
}

export interface TenantAdmissionOptions {
  /** `PUSH_TENANT_CONCURRENCY`: entries of one tenant worked on at once. */
  perTenant: number;
  /** Most let-go ids remembered (about 100 bytes each). @default 100000 */
  maxLetGo?: number;
  /** @default Date.now */
  now?: () => number;
}

export interface TenantAdmission {
  /** Whether `held` may start now (it is then counted as working), or must wait (it is then queued). */
  admit(held: HeldEntry): 'start' | 'wait';
  /** A working entry of `tenant` ended; returns its next waiting entry to start, now counted as working. */
  finished(tenant: string): HeldEntry | undefined;
  /** Gives up the newest waiting entry of the tenant with the most waiting; undefined if none waits. */
  letGo(): HeldEntry | undefined;
  /** Up to `count` let-go entries of `tenant`, oldest first, forgotten here (the worker claims them back). */
  takeBack(tenant: string, count: number): LetGoEntry[];
  /** Whether `tenant` has room for another entry and nothing of its own waiting in memory. */
  hasRoomFor(tenant: string): boolean;
  readonly waiting: number;
  /** Let-go ids remembered. */
  readonly letGoCount: number;
}

export function createTenantAdmission(options: TenantAdmissionOptions): TenantAdmission {
  const { perTenant } = options;
  const maxLetGo = options.maxLetGo ?? 100_000;
  const now = options.now ?? Date.now;
  const working = new Map<string, number>();
  const waiting = new Map<string, HeldEntry[]>();
  const letGo = new Map<string, LetGoEntry[]>();
  let waitingCount = 0;
  let letGoCount = 0;

  const startOne = (tenant: string): void => void working.set(tenant, (working.get(tenant) ?? 0) + 1);

  return {
    get waiting() {
      return waitingCount;
    },
    get letGoCount() {
      return letGoCount;
    },
    admit(held) {
      const { tenant } = held.entry.notification;
      if ((working.get(tenant) ?? 0) < perTenant) {
        startOne(tenant);
        return 'start';
      }
      const queue = waiting.get(tenant);
      if (queue === undefined) waiting.set(tenant, [held]);
      else queue.push(held);
      waitingCount += 1;
      return 'wait';
    },
    finished(tenant) {
      const left = (working.get(tenant) ?? 1) - 1;
      if (left === 0) working.delete(tenant);
      else working.set(tenant, left);
      const queue = waiting.get(tenant);
      const next = queue?.shift();
      if (next === undefined) return undefined;
      if (queue?.length === 0) waiting.delete(tenant);
      waitingCount -= 1;
      startOne(tenant);
      return next;
    },
    letGo() {
      let longest: HeldEntry[] | undefined;
      let tenant = '';
      for (const [name, queue] of waiting) {
        if (longest === undefined || queue.length > longest.length) [longest, tenant] = [queue, name];
      }
      const newest = longest?.pop();
      if (newest === undefined) return undefined;
      if (longest?.length === 0) waiting.delete(tenant);
      waitingCount -= 1;
      if (letGoCount < maxLetGo) {
        const remembered: LetGoEntry = { id: newest.id, tenant, at: now(), redelivered: newest.redelivered };
        const ids = letGo.get(tenant);
        if (ids === undefined) letGo.set(tenant, [remembered]);
        else ids.push(remembered);
        letGoCount += 1;
      }
      return newest;
    },
    takeBack(tenant, count) {
      const ids = letGo.get(tenant);
      if (ids === undefined) return [];
      // let go newest-first from the waiting queue, so oldest-first here is roughly stream order
      ids.sort((a, b) => compareIds(a.id, b.id));
      const taken = ids.splice(0, count);
      if (ids.length === 0) letGo.delete(tenant);
      letGoCount -= taken.length;
      return taken;
    },
    hasRoomFor(tenant) {
      return (working.get(tenant) ?? 0) < perTenant && !waiting.has(tenant);
    },
  };
}

/** Orders stream ids (`<ms>-<seq>`) by time, then sequence. */
function compareIds(a: string, b: string): number {
  const [aMs = 0, aSeq = 0] = a.split('-').map(Number);
  const [bMs = 0, bSeq = 0] = b.split('-').map(Number);
  return aMs - bMs || aSeq - bSeq;
}
