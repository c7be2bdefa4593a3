/**
 * Which tab of an origin leads: holds the one WebSocket for a server URL and user.
 *
 * With the Web Locks API (`navigator.locks`, every current browser) the leader is the
 * tab holding an exclusive lock; the others wait in the lock's queue, and the browser
 * hands it to the next one when the leader's tab closes or crashes, so there is never a
 * second leader. Without it, a heartbeat over a BroadcastChannel stands in: the leader
 * beats every `heartbeatMs`; a tab that hears none for three beats claims the lead, and
 * of two claimants the smaller tab id wins. That fallback can briefly have two leaders
 * (a hidden tab's timers are throttled); the core's position rule drops the repeats.
 */

/** The part of `navigator.locks` used here. */
export interface LockManagerLike {
  request(name: string, options: { signal: AbortSignal }, callback: () => Promise<void>): Promise<unknown>;
}

/** The part of `BroadcastChannel` used here (and by `shared.ts`). */
export interface ChannelLike {
  postMessage(message: unknown): void;
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
  close(): void;
}

export interface ElectionHandlers {
  /** This tab leads now. */
  lead(): void;
  /** This tab stopped leading while still running (heartbeat fallback only: another leader won). */
  follow(): void;
}

export interface ElectionOptions {
  /** The lock's and the fallback channel's name: one per server URL and user. */
  readonly name: string;
  /** This tab's id; of two fallback claimants the smaller wins. */
  readonly tab: string;
  /** `navigator.locks`, or none: the heartbeat fallback. */
  readonly locks: LockManagerLike | undefined;
  /** Opens a BroadcastChannel (the fallback's). */
  readonly openChannel: (name: string) => ChannelLike;
  /** The fallback's beat; a leader is gone after three missed. @default 1000 ms */
  readonly heartbeatMs?: number;
}

export interface Election {
  /** Leaves the election for good: releases the lock or stops beating, and tells the others. */
  resign(): void;
}

const DEFAULT_HEARTBEAT_MS = 1000;
/** Beats a follower waits for before it claims the lead. */
const MISSED_BEATS = 3;

export function elect(options: ElectionOptions, handlers: ElectionHandlers): Election {
  return options.locks ? electWithLock(options.locks, options.name, handlers) : electWithHeartbeat(options, handlers);
}

function electWithLock(locks: LockManagerLike, name: string, handlers: ElectionHandlers): Election {
  const abort = new AbortController();
  let release: (() => void) | undefined;
  locks
    .request(name, { signal: abort.signal }, () => {
      // Resigned while the grant was on its way: give the lock straight back.
      if (abort.signal.aborted) return Promise.resolve();
      return new Promise<void>((resolve) => {
        release = resolve;
        handlers.lead();
      });
    })
    // An aborted wait rejects with AbortError: that is `resign`, nothing to report.
    .catch(() => undefined);
  return {
    resign() {
      abort.abort();
      release?.();
    },
  };
}

/** What the fallback's tabs say to each other. */
type Beat = { readonly kind: 'heartbeat' | 'claim' | 'query' | 'resign'; readonly tab: string };

function parseBeat(data: unknown): Beat | undefined {
  if (typeof data !== 'object' || data === null) return undefined;
  const { kind, tab } = data as Record<string, unknown>;
  if ((kind === 'heartbeat' || kind === 'claim' || kind === 'query' || kind === 'resign') && typeof tab === 'string') return { kind, tab };
  return undefined;
}

function electWithHeartbeat(options: ElectionOptions, handlers: ElectionHandlers): Election {
  const heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
  const { tab } = options;
  const channel = options.openChannel(`${options.name}:election`);
  let state: 'follower' | 'candidate' | 'leader' | 'resigned' = 'follower';
  let timer: ReturnType<typeof setTimeout> | undefined;
  let beating: ReturnType<typeof setInterval> | undefined;

  const say = (kind: Beat['kind']): void => channel.postMessage({ kind, tab } satisfies Beat);
  const wait = (ms: number, then: () => void): void => {
    clearTimeout(timer);
    timer = setTimeout(then, ms);
  };
  const follow = (): void => {
    const wasLeader = state === 'leader';
    state = 'follower';
    clearInterval(beating);
    wait(heartbeatMs * MISSED_BEATS, claim);
    if (wasLeader) handlers.follow();
  };
  const claim = (): void => {
    state = 'candidate';
    say('claim');
    wait(heartbeatMs / 2, lead);
  };
  const lead = (): void => {
    clearTimeout(timer);
    state = 'leader';
    say('heartbeat');
    beating = setInterval(() => say('heartbeat'), heartbeatMs);
    handlers.lead();
  };

  channel.addEventListener('message', ({ data }) => {
    const beat = parseBeat(data);
    if (!beat || state === 'resigned') return;
    switch (beat.kind) {
      case 'heartbeat':
        if (state === 'leader' && beat.tab > tab) return say('heartbeat');
        return follow();
      case 'claim':
        if (state === 'leader') return say('heartbeat');
        if (state === 'candidate' && beat.tab < tab) return follow();
        return;
      case 'query':
        if (state === 'leader') say('heartbeat');
        return;
      case 'resign':
        if (state !== 'leader') claim();
        return;
    }
  });
  // Ask whether a leader is there; if no beat answers within one beat, claim.
  say('query');
  wait(heartbeatMs, claim);

  return {
    resign() {
      if (state === 'resigned') return;
      const wasLeader = state === 'leader';
      state = 'resigned';
      clearTimeout(timer);
      clearInterval(beating);
      if (wasLeader) say('resign');
      channel.close();
    },
  };
}
