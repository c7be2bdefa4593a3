/**
 * The worker's send slots: at most `concurrency` sends in flight, at most `perTenant` of
 * them for one tenant and at most `perDestination` for one tenant's endpoint (without
 * them, one tenant's hanging webhooks held all 256 slots, and every tenant's pushes queued
 * behind them).
 *
 * A send that cannot take a slot waits in the queue of its (tenant, destination); a
 * freed slot goes to the oldest queue whose tenant and destination both have room, so a
 * full destination or tenant holds back only its own sends. Queues are served in turn
 * (a queue served goes to the back), so no one queue takes every freed slot.
 *
 * Waiters are bounded by the callers (each entry the worker works on waits for one slot
 * at a time, each retry for one), not here.
 */

/** Who a send is for: its tenant, and the endpoint it goes to (none for a shared push service such as FCM). */
export interface SlotKey {
  readonly tenant: string;
  /** A {@link destinationOf} key; undefined: only the tenant's and the worker's limits apply. */
  readonly destination: string | undefined;
}

export interface SendLimits {
  /** `PUSH_CONCURRENCY`: most sends in flight in the worker. */
  readonly concurrency: number;
  /** `PUSH_TENANT_CONCURRENCY`: most sends in flight for one tenant. */
  readonly perTenant: number;
  /** `PUSH_DESTINATION_CONCURRENCY`: most sends in flight to one destination of one tenant. */
  readonly perDestination: number;
}

export interface Limiter {
  /** Resolves with the release function once a slot for `key` is free; call it exactly once. */
  acquire(key: SlotKey): Promise<() => void>;
  /** Sends holding a slot. */
  readonly active: number;
  /** Sends waiting for one. */
  readonly waiting: number;
  /** Slots held for `tenant` now. */
  activeFor(tenant: string): number;
  /** Slots held for `destination` now. */
  activeTo(destination: string): number;
}

interface Waiter {
  readonly key: SlotKey;
  readonly grant: () => void;
}

export function createLimiter(limits: SendLimits): Limiter {
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a whole number of at least 1, not ${value}`);
  }
  let active = 0;
  let waiting = 0;
  const byTenant = new Map<string, number>();
  const byDestination = new Map<string, number>();
  /** Waiters per (tenant, destination), in the order the queues are served. */
  const queues = new Map<string, Waiter[]>();

  const fits = ({ tenant, destination }: SlotKey): boolean =>
    active < limits.concurrency &&
    (byTenant.get(tenant) ?? 0) < limits.perTenant &&
    (destination === undefined || (byDestination.get(destination) ?? 0) < limits.perDestination);

  const add = (counts: Map<string, number>, name: string, delta: number): void => {
    const next = (counts.get(name) ?? 0) + delta;
    if (next === 0) counts.delete(name); // only names with a send in flight stay
    else counts.set(name, next);
  };

  const take = (key: SlotKey): (() => void) => {
    active += 1;
    add(byTenant, key.tenant, 1);
    if (key.destination !== undefined) add(byDestination, key.destination, 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      active -= 1;
      add(byTenant, key.tenant, -1);
      if (key.destination !== undefined) add(byDestination, key.destination, -1);
      serve();
    };
  };

  /** Hands free slots to the heads of the queues that fit, in turn. */
  const serve = (): void => {
    for (const [name, queue] of queues) {
      if (active >= limits.concurrency) return;
      const head = queue[0];
      if (head === undefined || !fits(head.key)) continue;
      queue.shift();
      waiting -= 1;
      queues.delete(name);
      if (queue.length > 0) queues.set(name, queue); // to the back: the others' turn first
      head.grant();
    }
  };

  return {
    get active() {
      return active;
    },
    get waiting() {
      return waiting;
    },
    activeFor: (tenant) => byTenant.get(tenant) ?? 0,
    activeTo: (destination) => byDestination.get(destination) ?? 0,
    acquire(key) {
      const name = `${key.tenant}\0${key.destination ?? ''}`;
      const queue = queues.get(name);
      if (queue === undefined && fits(key)) return Promise.resolve(take(key));
      return new Promise((resolve) => {
        const waiter: Waiter = { key, grant: () => resolve(take(key)) };
        if (queue === undefined) queues.set(name, [waiter]);
        else queue.push(waiter);
        waiting += 1;
      });
    },
  };
}
