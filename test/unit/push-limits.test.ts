/**
 * What keeps one tenant's dead endpoints from owning the push worker: the
 * circuit breaker's state machine on an injected clock, the send slots' per-tenant and
 * per-destination limits, and the worker's waits sharing one abort listener.
 */
import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { createTenantAdmission, type HeldEntry } from '../../src/push/admission.js';
import { createBreakers, type Admission, type CircuitState } from '../../src/push/breaker.js';
import { destinationOf } from '../../src/push/destinations.js';
import { createLimiter, type SlotKey } from '../../src/push/limiter.js';
import { createSleeper } from '../../src/push/sleeper.js';

function breakersOnClock(options: { failureThreshold?: number; cooldownMs?: number; maxTracked?: number } = {}) {
  let time = 1_000_000;
  const seen: Array<[string, CircuitState, CircuitState]> = [];
  let spread = 0;
  const breakers = createBreakers({ failureThreshold: 3, cooldownMs: 1000, ...options, now: () => time, random: () => spread, onTransition: (d, from, to) => seen.push([d, from, to]) });
  const allowed = (destination: string): Admission & { allowed: true } => {
    const admission = breakers.admit(destination);
    if (!admission.allowed) throw new Error(`${destination} refused: ${JSON.stringify(admission)}`);
    return admission;
  };
  /** One send that got no answer. */
  const fail = (destination: string): void => breakers.record(destination, allowed(destination), false);
  const succeed = (destination: string): void => breakers.record(destination, allowed(destination), true);
  return { breakers, seen, allowed, fail, succeed, advance: (ms: number) => (time += ms), spreadBy: (share: number) => (spread = share) };
}

describe('circuit breaker', () => {
  it('opens after the threshold of failures in a row, and a success in between starts the count again', () => {
    const { breakers, seen, fail, succeed } = breakersOnClock();
    fail('evil a');
    fail('evil a');
    succeed('evil a');
    expect(breakers.tracked).toBe(0); // a success on a closed circuit forgets it
    fail('evil a');
    fail('evil a');
    expect(breakers.admit('evil a')).toEqual({ allowed: true, probe: false });
    fail('evil a');
    expect(seen).toEqual([['evil a', 'closed', 'open']]);
    expect(breakers.admit('evil a')).toEqual({ allowed: false, state: 'open', retryAfterMs: 1000 });
    expect(breakers.counts()).toEqual({ open: 1, halfOpen: 0 });
    // another destination, and the same origin in another tenant, are not affected
    expect(breakers.admit('evil b')).toEqual({ allowed: true, probe: false });
    expect(breakers.admit('good a')).toEqual({ allowed: true, probe: false });
  });

  it('fails sends at once while open, saying how long is left; after the cool-down lets exactly one probe through', () => {
    const { breakers, seen, fail, advance, spreadBy } = breakersOnClock();
    for (let i = 0; i < 3; i += 1) fail('d');
    advance(400);
    expect(breakers.admit('d')).toEqual({ allowed: false, state: 'open', retryAfterMs: 600 });
    // the refused sends come back spread over up to half a cool-down after it ends
    spreadBy(1);
    expect(breakers.admit('d')).toEqual({ allowed: false, state: 'open', retryAfterMs: 1100 });
    spreadBy(0);
    advance(600);
    const probe = breakers.admit('d');
    expect(probe).toEqual({ allowed: true, probe: true });
    expect(breakers.counts()).toEqual({ open: 0, halfOpen: 1 });
    // the probe is in flight: everyone else still fails at once
    expect(breakers.admit('d')).toEqual({ allowed: false, state: 'half_open', retryAfterMs: 1000 });
    expect(breakers.admit('d')).toMatchObject({ allowed: false });
    if (!probe.allowed) throw new Error('unreachable');
    breakers.record('d', probe, true);
    expect(seen.map(([, , to]) => to)).toEqual(['open', 'half_open', 'closed']);
    expect(breakers.admit('d')).toEqual({ allowed: true, probe: false });
    expect(breakers.counts()).toEqual({ open: 0, halfOpen: 0 });
    expect(breakers.transitions).toEqual({ open: 1, half_open: 1, closed: 1 });
  });

  it('opens again for a whole cool-down when the probe fails', () => {
    const { breakers, seen, fail, allowed, advance } = breakersOnClock();
    for (let i = 0; i < 3; i += 1) fail('d');
    advance(1000);
    const probe = allowed('d');
    advance(250); // the probe took a while
    breakers.record('d', probe, false);
    expect(seen.map(([, from, to]) => `${from}>${to}`)).toEqual(['closed>open', 'open>half_open', 'half_open>open']);
    expect(breakers.admit('d')).toEqual({ allowed: false, state: 'open', retryAfterMs: 1000 });
    advance(1000);
    expect(breakers.admit('d')).toEqual({ allowed: true, probe: true });
  });

  it('lets the probe alone decide: sends let through before it opened change nothing when they end', () => {
    const { breakers, allowed, advance } = breakersOnClock();
    const early = [allowed('d'), allowed('d'), allowed('d'), allowed('d'), allowed('d')];
    for (const admission of early.slice(0, 3)) breakers.record('d', admission, false); // opens
    breakers.record('d', early[3] ?? allowed('x'), true); // a late success: still open
    expect(breakers.admit('d')).toMatchObject({ allowed: false, state: 'open' });
    advance(1000);
    const probe = allowed('d');
    breakers.record('d', early[4] ?? allowed('x'), true); // a late success while half open: the probe decides
    expect(breakers.admit('d')).toMatchObject({ allowed: false, state: 'half_open' });
    breakers.record('d', probe, false);
    expect(breakers.admit('d')).toMatchObject({ allowed: false, state: 'open' });
  });

  it('tracks at most maxTracked destinations, forgetting the least recently failed', () => {
    const { breakers, fail } = breakersOnClock({ maxTracked: 100, failureThreshold: 2 });
    for (let i = 0; i < 250; i += 1) fail(`d${i}`);
    expect(breakers.tracked).toBe(100);
    fail('d249'); // still tracked: its second failure opens it
    expect(breakers.admit('d249')).toMatchObject({ allowed: false });
    fail('d0'); // forgotten: its count starts again
    expect(breakers.admit('d0')).toEqual({ allowed: true, probe: false });
    expect(breakers.tracked).toBe(100);
  });
});

describe('send slots', () => {
  const key = (tenant: string, destination?: string): SlotKey => ({ tenant, destination });

  it('holds one destination and one tenant to their share, and serves the others past them', async () => {
    const limiter = createLimiter({ concurrency: 6, perTenant: 4, perDestination: 2 });
    const order: string[] = [];
    const take = (name: string, slot: SlotKey): Promise<() => void> => limiter.acquire(slot).then((release) => (order.push(name), release));
    const hanging = [await take('evil-1', key('evil', 'evil hang')), await take('evil-2', key('evil', 'evil hang'))];
    // the destination is full: evil's third send to it waits, and waits behind nobody else's
    const third = take('evil-3', key('evil', 'evil hang'));
    const other = await take('evil-other', key('evil', 'evil other'));
    await take('evil-fcm', key('evil'));
    // the tenant is full (4): another evil send waits too
    const fifth = take('evil-5', key('evil', 'evil third'));
    // good is served at once, past both queues
    const good = await take('good', key('good', 'good hook'));
    expect(limiter.activeFor('evil')).toBe(4);
    expect(limiter.activeTo('evil hang')).toBe(2);
    expect(limiter.waiting).toBe(2);
    expect(order).toEqual(['evil-1', 'evil-2', 'evil-other', 'evil-fcm', 'good']);

    other(); // frees a tenant slot, not one at the hanging destination: evil-5 goes, evil-3 still waits
    await fifth;
    expect(order.at(-1)).toBe('evil-5');
    expect(limiter.activeTo('evil hang')).toBe(2);
    hanging[0]?.();
    await third;
    expect(order.at(-1)).toBe('evil-3');
    expect(limiter.activeTo('evil hang')).toBe(2);
    good();
    expect(limiter.activeFor('good')).toBe(0);
  });

  it('keeps to the worker\'s limit, and gives freed slots to the waiting queues in turn', async () => {
    const limiter = createLimiter({ concurrency: 2, perTenant: 2, perDestination: 2 });
    const first = await limiter.acquire(key('a'));
    const second = await limiter.acquire(key('a'));
    const order: string[] = [];
    const waiters = [
      limiter.acquire(key('a')).then((release) => (order.push('a1'), release)),
      limiter.acquire(key('a')).then((release) => (order.push('a2'), release)),
      limiter.acquire(key('b')).then((release) => (order.push('b1'), release)),
    ];
    first();
    const a1 = await waiters[0];
    second();
    await waiters[2];
    // b's queue got its turn before a's second waiter
    expect(order).toEqual(['a1', 'b1']);
    a1?.();
    await waiters[1];
    expect(order).toEqual(['a1', 'b1', 'a2']);
    expect(limiter.active).toBe(2);
  });

  it('names a destination by its origin within its tenant; FCM has none', () => {
    const hook = (url: string) => ({ kind: 'WEBHOOK' as const, url, id: 'x', registeredAt: 0 });
    expect(destinationOf('evil', hook('https://hooks.example.com:8443/a?b=1'))).toBe('evil https://hooks.example.com:8443');
    expect(destinationOf('evil', hook('https://hooks.example.com:8443/other'))).toBe('evil https://hooks.example.com:8443');
    expect(destinationOf('good', hook('https://hooks.example.com:8443/a'))).toBe('good https://hooks.example.com:8443');
    const subscription = { endpoint: 'https://push.example.net/send/abc', keys: { p256dh: 'p', auth: 'a' } };
    expect(destinationOf('acme', { kind: 'WEB_PUSH', subscription, id: 'y', registeredAt: 0 })).toBe('acme https://push.example.net');
    expect(destinationOf('acme', { kind: 'FCM', token: 't', id: 'z', registeredAt: 0 })).toBeUndefined();
  });
});

describe('tenant admission', () => {
  const held = (tenant: string, id: string): HeldEntry => ({
    id,
    redelivered: false,
    entry: { notification: { id: 'n1', tenant, audience: 'USER', to: 'u', text: 't', timestamp: 1, sender: 's' }, policy: 'ALWAYS', target: { kind: 'user', user: 'u' }, queuedAt: 0 },
  });

  it('starts a tenant\'s share, keeps the rest waiting in order, and starts the next as one ends', () => {
    const admission = createTenantAdmission({ perTenant: 2 });
    expect(['1-0', '2-0', '3-0', '4-0'].map((id) => admission.admit(held('evil', id)))).toEqual(['start', 'start', 'wait', 'wait']);
    expect(admission.admit(held('good', '5-0'))).toBe('start');
    expect(admission.waiting).toBe(2);
    expect(admission.finished('evil')?.id).toBe('3-0');
    expect(admission.finished('evil')?.id).toBe('4-0');
    expect(admission.finished('evil')).toBeUndefined();
    expect(admission.hasRoomFor('evil')).toBe(true);
    expect(admission.waiting).toBe(0);
  });

  it('lets go the newest waiting entry of the tenant with the most waiting, and gives its id back oldest first', () => {
    let time = 0;
    const admission = createTenantAdmission({ perTenant: 1, maxLetGo: 3, now: () => time });
    for (const id of ['1-0', '2-0', '3-0', '10-0', '10-1']) admission.admit(held('evil', id));
    admission.admit(held('good', '4-0'));
    admission.admit(held('good', '5-0'));
    time = 7;
    expect(admission.letGo()?.id).toBe('10-1'); // evil has 4 waiting, good 1
    expect(admission.letGo()?.id).toBe('10-0');
    expect(admission.letGo()?.id).toBe('3-0');
    expect(admission.letGo()?.id).toBe('2-0'); // evil's 1 ties good's 1: the first found
    expect(admission.letGoCount).toBe(3); // the fourth was not remembered: past maxLetGo, the claim loop takes it
    expect(admission.takeBack('evil', 2)).toEqual([
      { id: '3-0', tenant: 'evil', at: 7, redelivered: false },
      { id: '10-0', tenant: 'evil', at: 7, redelivered: false },
    ]);
    expect(admission.takeBack('evil', 5).map((entry) => entry.id)).toEqual(['10-1']);
    expect(admission.takeBack('good', 5)).toEqual([]);
    expect(admission.letGoCount).toBe(0);
  });
});

describe('the worker\'s waits', () => {
  it('share one abort listener however many wait, and all end at once on abort', async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error): number => warnings.push(warning);
    process.on('warning', onWarning);
    try {
      const abort = new AbortController();
      const sleeper = createSleeper(abort.signal);
      const waits = Array.from({ length: 1000 }, () => sleeper.sleep(60_000));
      expect(getEventListeners(abort.signal, 'abort')).toHaveLength(1);
      expect(sleeper.pending).toBe(1000);
      const short = await sleeper.sleep(1);
      expect(short).toBe(true);
      abort.abort();
      expect(await Promise.all(waits)).toEqual(Array.from({ length: 1000 }, () => false));
      expect(sleeper.pending).toBe(0);
      expect(await sleeper.sleep(60_000)).toBe(false);
      // warnings are emitted on the next tick
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings.filter((warning) => warning.name === 'MaxListenersExceededWarning')).toEqual([]);
    } finally {
      process.off('warning', onWarning);
    }
  });
});
