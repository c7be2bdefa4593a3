/**
 * `shared: true`: the tabs of one origin share one WebSocket per server URL and user.
 *
 * One tab leads (`election.ts`): it runs the direct source (`connect()`), hands each event
 * to its own core and relays it on a BroadcastChannel; every other tab is a follower
 * whose source is that channel. Both are a {@link NotificationSource}, so the core above
 * cannot tell them apart, and each tab's core applies the same position rule (an id is
 * handed to the app only if it is after the position), so a repeat is dropped wherever
 * it comes from.
 *
 * Nothing is lost when the leader changes: the new leader resumes its own subscription
 * after its own position (`since`), and each follower, on hearing a new leader (or when
 * it starts), says `hello` with its position; the leader answers with what it has seen
 * after it, from the last {@link REPLAY_LIMIT} events (at most {@link REPLAY_BYTES}) every
 * tab keeps. A follower further
 * behind than that is told of a gap (`onGap`), never silently skipped.
 *
 * A follower's requests (`markNotificationsRead`) go to the leader and run on its
 * connection; if the leader changes before answering, the request rejects and the core
 * sends it again once live.
 */
import { elect, type ChannelLike, type Election, type LockManagerLike } from './election.js';
import { GraphQLResultError } from './graphql.js';
import { compareNotificationIds } from './position.js';
import type { NotificationSource, SourceHandlers, SourceOperation } from './source.js';
import { parseMessage, type Kept, type Message, type RelayedError, type RelayedEvent } from './tab-messages.js';
import { HeraldSessionError, type HeraldStatus } from './types.js';

export type { ChannelLike, LockManagerLike } from './election.js';

/**
 * Events every tab keeps for a follower that says `hello` (a tab that just opened, or
 * one that missed the old leader's last words), at most: also bounded in bytes by
 * {@link SharedSourceOptions.replayBytes}, whichever bound is reached first.
 */
export const REPLAY_LIMIT = 100;

/** The default of {@link SharedSourceOptions.replayBytes}: 1 MiB per tab. */
export const REPLAY_BYTES = 1024 * 1024;

export interface SharedSourceOptions {
  /** Names the lock and the channel: one per server URL and user, e.g. `herald:<url>:<user>`. */
  readonly name: string;
  /** Makes the direct source this tab runs while it leads. */
  readonly connect: () => NotificationSource;
  /** The Web Locks API; without it, a heartbeat on the channel elects the leader. @default `navigator.locks` */
  readonly locks?: LockManagerLike | undefined;
  /** Opens a channel between the origin's tabs. @default `new BroadcastChannel(name)` */
  readonly openChannel?: (name: string) => ChannelLike;
  /** The heartbeat fallback's beat, in ms. @default 1000 */
  readonly heartbeatMs?: number;
  /**
   * The most bytes of events (each counted as its JSON in UTF-8, as it crosses the
   * channel) a tab keeps for a rejoining follower, besides the {@link REPLAY_LIMIT}
   * events. Oldest dropped first; a follower behind what was dropped is told of a gap
   * (`onGap`), never silently skipped. A server may allow texts of up to
   * `MAX_TEXT_LENGTH` = 1,000,000 characters, so the count alone could hold 300 MB.
   * @default 1048576 (1 MiB)
   */
  readonly replayBytes?: number;
}

/** Whether this environment can share: a browser page with BroadcastChannel. */
export function canShare(): boolean {
  return typeof globalThis.BroadcastChannel === 'function' && typeof (globalThis as { document?: unknown }).document === 'object';
}

export function createSharedSource(options: SharedSourceOptions): NotificationSource {
  const tab = randomTab();
  const openChannel = options.openChannel ?? ((name: string): ChannelLike => new BroadcastChannel(name));
  const locks = 'locks' in options ? options.locks : navigatorLocks();
  let channel: ChannelLike | undefined;
  let election: Election | undefined;
  let handlers: SourceHandlers | undefined;
  /** The direct source, while this tab leads. */
  let direct: NotificationSource | undefined;
  let leaderTab: string | undefined;
  let status: HeraldStatus = 'connecting';
  let stopped = false;
  const kept = createKeptEvents(options.replayBytes ?? REPLAY_BYTES);
  let nextRequest = 0;
  const pending = new Map<number, { resolve(data: unknown): void; reject(error: Error): void }>();

  const post = (message: Message): void => channel?.postMessage(message);

  /** Hands an event to this tab's core (and keeps it for followers' `hello`). */
  const deliver = (event: RelayedEvent): void => {
    if (!handlers || stopped) return;
    switch (event.type) {
      case 'notification':
      case 'readState':
        kept.add(event);
        return event.type === 'notification' ? handlers.notification(event.notification) : handlers.readState(event.readUpTo);
      case 'gap':
        kept.breakAt();
        return handlers.gap(event.gap);
      case 'status':
        status = event.status;
        return handlers.status(event.status);
      case 'fatal':
        return endSession(new HeraldSessionError(event.code, event.message));
    }
  };

  const rejectPending = (why: string): void => {
    for (const { reject } of pending.values()) reject(new Error(why));
    pending.clear();
  };

  const endSession = (error: HeraldSessionError): void => {
    const local = handlers;
    stop();
    local?.fatal(error);
  };

  const lead = (): void => {
    if (stopped || !handlers) return;
    const core = handlers;
    rejectPending('this tab took the lead before the answer');
    leaderTab = tab;
    const source = options.connect();
    // Only while it is this tab's source: stopping it reports `offline`, which is this
    // tab's business, not the followers' (a new leader is about to tell them its own).
    const relay = (event: RelayedEvent): void => {
      if (direct !== source) return;
      post({ kind: 'event', tab, event });
      deliver(event);
    };
    direct = source;
    post({ kind: 'leader', tab });
    source.start({
      since: () => core.since(),
      notification: (notification) => relay({ type: 'notification', notification }),
      readState: (readUpTo) => relay({ type: 'readState', readUpTo }),
      gap: (gap) => relay({ type: 'gap', gap }),
      status: (next) => relay({ type: 'status', status: next }),
      fatal: (error) => {
        if (direct !== source) return;
        direct = undefined;
        post({ kind: 'event', tab, event: { type: 'fatal', code: error.code, message: error.message } });
        endSession(error);
      },
    });
  };

  /** Detaches the direct source first, so what it says as it stops goes nowhere. */
  const stopDirect = (): void => {
    const source = direct;
    direct = undefined;
    source?.stop();
  };

  /** Stopped leading (the heartbeat fallback found another leader): follow it. */
  const follow = (): void => {
    stopDirect();
    leaderTab = undefined;
    deliver({ type: 'status', status: 'connecting' });
    post({ kind: 'hello', tab, since: handlers?.since() });
  };

  const answerHello = (to: string, since: string | undefined): void => {
    const { events, gap } = kept.after(since);
    post({ kind: 'replay', to, events, gap, status });
  };

  const answerRequest = (to: string, id: number, operation: SourceOperation): void => {
    if (!direct) return post({ kind: 'response', to, id, error: { message: 'the leader tab has no connection' } });
    direct.request(operation).then(
      (data) => post({ kind: 'response', to, id, data }),
      (error: unknown) => post({ kind: 'response', to, id, error: relayedError(error) }),
    );
  };

  const onMessage = (message: Message): void => {
    const leading = direct !== undefined;
    switch (message.kind) {
      case 'leader':
        if (leading) return;
        leaderTab = message.tab;
        rejectPending('the leader tab changed before the answer');
        return post({ kind: 'hello', tab, since: handlers?.since() });
      case 'resign':
        if (leading || message.tab !== leaderTab) return;
        leaderTab = undefined;
        rejectPending('the leader tab closed before the answer');
        return deliver({ type: 'status', status: 'connecting' });
      case 'event':
        // Two leaders at once (heartbeat fallback, briefly; or the lock came here just as the
        // old leader's session ended): this one has its own connection, but an end is for all.
        if (leading && message.event.type !== 'fatal') return;
        leaderTab = message.tab;
        return deliver(message.event);
      case 'hello':
        if (leading) answerHello(message.tab, message.since);
        return;
      case 'replay':
        if (leading || message.to !== tab) return;
        if (message.gap) deliver({ type: 'gap', gap: { reason: 'this tab fell further behind than the leader tab keeps', since: handlers?.since() } });
        for (const event of message.events) deliver(event);
        return deliver({ type: 'status', status: message.status });
      case 'request':
        if (leading) answerRequest(message.tab, message.id, message.operation);
        return;
      case 'response': {
        const waiting = message.to === tab ? pending.get(message.id) : undefined;
        if (!waiting) return;
        pending.delete(message.id);
        return message.error ? waiting.reject(revivedError(message.error)) : waiting.resolve(message.data);
      }
    }
  };

  const enterElection = (): void => {
    election = elect({ name: options.name, tab, locks, openChannel, ...(options.heartbeatMs ? { heartbeatMs: options.heartbeatMs } : {}) }, { lead, follow });
  };

  /** Leaves the lead (and the election) at once, telling the followers: one of them takes over now. */
  const leave = (): void => {
    if (direct) post({ kind: 'resign', tab });
    election?.resign();
    election = undefined;
    stopDirect();
  };

  /** Opens the tabs' channel and listens on it. */
  const openTabChannel = (): void => {
    channel = openChannel(options.name);
    channel.addEventListener('message', ({ data }) => {
      const message = parseMessage(data);
      if (message && !stopped) onMessage(message);
    });
  };

  // A page being hidden for good (closed, navigated away, or frozen into the back/forward
  // cache) leaves now: the lock would go with it anyway, but the heartbeat fallback would
  // wait three beats. It closes its channel too: Chrome evicts a cached page that a
  // BroadcastChannel message reaches (`BroadcastChannelOnMessage`), which every relayed
  // event would. Shown again from that cache, the tab opens it again and joins afresh,
  // asking the leader for what it missed (`hello`).
  const onPageHide = (): void => {
    leave();
    rejectPending('the tab was hidden before the answer');
    channel?.close();
    channel = undefined;
  };
  const onPageShow = (event: Event): void => {
    if (stopped || election || !(event as { persisted?: boolean }).persisted) return;
    leaderTab = undefined;
    openTabChannel();
    deliver({ type: 'status', status: 'connecting' });
    post({ kind: 'hello', tab, since: handlers?.since() });
    enterElection();
  };

  function stop(): void {
    if (stopped) return;
    leave();
    stopped = true;
    rejectPending('the client was closed');
    page?.removeEventListener('pagehide', onPageHide);
    page?.removeEventListener('pageshow', onPageShow);
    channel?.close();
    channel = undefined;
  }

  return {
    start(startHandlers) {
      handlers = startHandlers;
      kept.startAt(startHandlers.since());
      openTabChannel();
      page?.addEventListener('pagehide', onPageHide);
      page?.addEventListener('pageshow', onPageShow);
      startHandlers.status('connecting');
      post({ kind: 'hello', tab, since: startHandlers.since() });
      enterElection();
    },
    request(operation) {
      if (stopped) return Promise.reject(new Error('the client was closed'));
      if (direct) return direct.request(operation);
      const id = nextRequest++;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        post({ kind: 'request', tab, id, operation });
      });
    },
    stop,
  };
}

/**
 * The last {@link REPLAY_LIMIT} notifications and read-state changes this tab passed on,
 * no more than `maxBytes` of them, and from where they run without a hole (`from`: the
 * position before the first).
 */
function createKeptEvents(maxBytes: number) {
  let events: Kept[] = [];
  /** Each kept event's size, in step with `events`, and their sum. */
  let sizes: number[] = [];
  let bytes = 0;
  /** Everything after `from` up to the newest is in `events`; `null`: unknown (after a gap). */
  let from: string | undefined | null = null;
  let newest: string | undefined;

  return {
    add(event: Kept): void {
      if (event.type === 'notification') {
        if (newest !== undefined && !isAfter(event.notification.id, newest)) return;
        newest = event.notification.id;
      }
      const size = byteSize(event);
      events.push(event);
      sizes.push(size);
      bytes += size;
      while (events.length > 0 && (events.length > REPLAY_LIMIT || bytes > maxBytes)) {
        const dropped = events.shift();
        bytes -= sizes.shift() ?? 0;
        if (dropped?.type === 'notification') from = dropped.notification.id;
      }
    },
    /** Starts the kept run at this tab's starting position (`undefined`: it started live, with no position). */
    startAt(since: string | undefined): void {
      events = [];
      sizes = [];
      bytes = 0;
      from = since;
      newest = since;
    },
    /** A gap: nothing kept before it runs on into what follows. */
    breakAt(): void {
      events = [];
      sizes = [];
      bytes = 0;
      from = null;
      newest = undefined;
    },
    /** What a follower at `since` missed, and whether some of it is no longer kept. */
    after(since: string | undefined): { events: Kept[]; gap: boolean } {
      if (since === undefined) return { events: [], gap: false };
      for (let at = events.length - 1; at >= 0; at -= 1) {
        const event = events[at];
        if (event?.type === 'notification' && !isAfter(event.notification.id, since)) return { events: events.slice(at + 1), gap: false };
      }
      // Nothing kept is at or before `since`: fine if it is where the kept run starts (or
      // later, or of another history, which the core tells as a gap by itself).
      const covered = from === since || (typeof from === 'string' && (isAfter(since, from) || !sameEpoch(since, from))) || (from === undefined && events.length === 0);
      return { events, gap: !covered };
    },
  };
}

const encoder = new TextEncoder();

/** An event's size as it crosses the channel: its JSON, in UTF-8 bytes. */
function byteSize(event: Kept): number {
  return encoder.encode(JSON.stringify(event)).length;
}

/** Whether `a` comes after `b` in one history; ids of different histories are never "after". */
function isAfter(a: string, b: string): boolean {
  return (compareNotificationIds(a, b) ?? 0) > 0;
}

function sameEpoch(a: string, b: string): boolean {
  return compareNotificationIds(a, b) !== undefined;
}

/** The page's window, where there is one (for `pagehide`). */
const page = typeof (globalThis as { document?: unknown }).document === 'object' ? (globalThis as unknown as Pick<EventTarget, 'addEventListener' | 'removeEventListener'>) : undefined;

function randomTab(): string {
  const crypto = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  return crypto?.randomUUID?.() ?? `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

function navigatorLocks(): LockManagerLike | undefined {
  const locks = (globalThis as { navigator?: { locks?: LockManagerLike } }).navigator?.locks;
  return typeof locks?.request === 'function' ? locks : undefined;
}

/** A request's failure as it crosses: a GraphQL answer stays one (the inbox does not retry it). */
function relayedError(error: unknown): RelayedError {
  if (error instanceof GraphQLResultError) return { message: error.message, failure: error.failure };
  return { message: error instanceof Error ? error.message : String(error) };
}

function revivedError(error: RelayedError): Error {
  return error.failure ? new GraphQLResultError(error.failure) : new Error(error.message);
}

