/**
 * The shared-tab source (`packages/client/src/shared.ts`): tabs as several sources in one
 * process, on Node's real BroadcastChannel, each with a core that applies the position
 * rule, and a direct source the test drives. Web Locks are a small in-memory lock manager
 * whose holder can "crash" (release without a word, as a closed tab does); the heartbeat
 * fallback runs with a 20 ms beat.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createSharedSource, REPLAY_BYTES, REPLAY_LIMIT, type ChannelLike, type LockManagerLike } from '../../packages/client/src/shared.js';
import { parseMessage } from '../../packages/client/src/tab-messages.js';
import { GraphQLResultError } from '../../packages/client/src/graphql.js';
import type { NotificationSource, SourceHandlers, SourceOperation } from '../../packages/client/src/source.js';
import type { HeraldGap, HeraldNotification, HeraldSessionError, HeraldStatus } from '../../packages/client/src/types.js';

const EPOCH = 'e1';
const id = (n: number): string => `${EPOCH}_${1000 + n}-0`;
const notification = (n: number): HeraldNotification => ({ id: id(n), text: `n${n}`, timestamp: 1, audience: 'USER' });

/** A direct source the test drives: what the leader tab's WebSocket would give. */
class FakeDirect implements NotificationSource {
  handlers: SourceHandlers | undefined;
  stopped = false;
  readonly requests: SourceOperation[] = [];
  answer: (operation: SourceOperation) => Promise<unknown> = async () => ({ ok: true });
  start(handlers: SourceHandlers): void {
    this.handlers = handlers;
    handlers.status('live');
  }
  request(operation: SourceOperation): Promise<unknown> {
    this.requests.push(operation);
    return this.answer(operation);
  }
  /** As the WebSocket source does, it reports `offline` as it stops. */
  stop(): void {
    this.stopped = true;
    this.handlers?.status('offline');
  }
  /** Sends every notification from `since` on up to `last`, as a resuming subscription does. */
  resume(last: number): void {
    const since = this.handlers?.since();
    const first = since === undefined ? 1 : Number(/_(\d+)-/.exec(since)?.[1]) - 1000 + 1;
    for (let n = first; n <= last; n += 1) this.handlers?.notification(notification(n));
  }
}

/** One lock manager for the "browser"; `crash(tab)` releases that tab's lock silently. */
function createLocks() {
  const queues = new Map<string, Array<{ tab: string; grant: () => void }>>();
  const held = new Map<string, { tab: string; release: () => void }>();
  const next = (name: string): void => {
    if (held.has(name)) return;
    const waiter = queues.get(name)?.shift();
    waiter?.grant();
  };
  return {
    forTab(tab: string): LockManagerLike {
      return {
        request(name, { signal }, callback) {
          return new Promise((resolve, reject) => {
            const waiter = {
              tab,
              grant: () => {
                let released = false;
                const release = (): void => {
                  if (released) return;
                  released = true;
                  held.delete(name);
                  resolve(undefined);
                  next(name);
                };
                held.set(name, { tab, release });
                void callback().then(release);
              },
            };
            signal.addEventListener('abort', () => {
              const queue = queues.get(name) ?? [];
              const at = queue.indexOf(waiter);
              if (at >= 0) {
                queue.splice(at, 1);
                reject(new DOMException('aborted', 'AbortError'));
              }
            });
            queues.set(name, [...(queues.get(name) ?? []), waiter]);
            next(name);
          });
        },
      };
    },
    crash(tab: string): void {
      for (const lock of [...held.values()]) if (lock.tab === tab) lock.release();
      for (const queue of queues.values()) for (const waiter of [...queue]) if (waiter.tab === tab) queue.splice(queue.indexOf(waiter), 1);
    },
  };
}

/** A tab: a shared source under a core that keeps a position and drops what is not after it. */
function openTab(name: string, options: { locks?: LockManagerLike | undefined; since?: string; heartbeatMs?: number; replayBytes?: number } = {}) {
  const directs: FakeDirect[] = [];
  const channels: ChannelLike[] = [];
  const delivered: string[] = [];
  const gaps: HeraldGap[] = [];
  const statuses: HeraldStatus[] = [];
  const fatals: HeraldSessionError[] = [];
  let position = options.since;
  const source = createSharedSource({
    name,
    locks: options.locks,
    heartbeatMs: options.heartbeatMs ?? 20,
    ...(options.replayBytes === undefined ? {} : { replayBytes: options.replayBytes }),
    connect: () => {
      const direct = new FakeDirect();
      directs.push(direct);
      return direct;
    },
    openChannel: (channelName) => {
      const channel = new BroadcastChannel(channelName) as unknown as ChannelLike;
      channels.push(channel);
      opened.push(channel);
      return channel;
    },
  });
  source.start({
    since: () => position,
    notification: (received) => {
      if (position !== undefined && !(received.id > position)) return;
      position = received.id;
      delivered.push(received.text);
    },
    readState: () => undefined,
    gap: (gap) => gaps.push(gap),
    status: (status) => statuses.push(status),
    fatal: (error) => fatals.push(error),
  });
  return {
    source,
    directs,
    delivered,
    gaps,
    statuses,
    fatals,
    get leading(): FakeDirect | undefined {
      return directs.find((direct) => !direct.stopped && direct.handlers !== undefined);
    },
    /** The tab is gone without a word: its channels close, its socket dies. */
    crash(): void {
      for (const channel of channels) channel.close();
      for (const direct of directs) direct.stopped = true;
    },
  };
}

const opened: ChannelLike[] = [];
afterEach(() => {
  for (const channel of opened.splice(0)) channel.close();
});

let names = 0;
const uniqueName = (): string => `herald:test:${names++}`;

async function until(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
const texts = (from: number, to: number): string[] => Array.from({ length: to - from + 1 }, (_, at) => `n${from + at}`);

describe('shared tabs with Web Locks', () => {
  it('one tab leads and holds the one connection; every tab gets each notification once, in order', async () => {
    const name = uniqueName();
    const locks = createLocks();
    const tabs = ['a', 'b', 'c'].map((tab) => openTab(name, { locks: locks.forTab(tab) }));
    await until(() => tabs.some((tab) => tab.leading), 'a leader');
    expect(tabs.flatMap((tab) => tab.directs)).toHaveLength(1);
    const leader = tabs.find((tab) => tab.leading);
    leader?.leading?.resume(5);
    for (const tab of tabs) await until(() => tab.delivered.length === 5, 'five notifications in every tab');
    for (const tab of tabs) expect(tab.delivered).toEqual(texts(1, 5));
    for (const tab of tabs) expect(tab.statuses.at(-1)).toBe('live');
    for (const tab of tabs) tab.source.stop();
  });

  it("when the leader's tab dies mid-stream another takes over, resumes after its position, and nothing is lost or repeated", async () => {
    const name = uniqueName();
    const locks = createLocks();
    const tabs = ['a', 'b', 'c', 'd'].map((tab) => Object.assign(openTab(name, { locks: locks.forTab(tab) }), { tab }));
    await until(() => tabs.some((tab) => tab.leading), 'a leader');
    const first = tabs.find((tab) => tab.leading);
    first?.leading?.resume(3);
    for (const tab of tabs) await until(() => tab.delivered.length === 3, 'three notifications');

    // The leader relays n4 and dies before anything else: its lock goes, no word is said.
    first?.leading?.handlers?.notification(notification(4));
    first?.crash();
    if (first) locks.crash(first.tab);
    const rest = tabs.filter((tab) => tab !== first);
    await until(() => rest.some((tab) => tab.leading), 'a new leader');
    expect(rest.flatMap((tab) => tab.directs)).toHaveLength(1);
    // The new leader's subscription resumes after its own position: history overlaps what it has.
    rest.find((tab) => tab.leading)?.leading?.resume(8);
    for (const tab of rest) await until(() => tab.delivered.length === 8, 'eight notifications');
    for (const tab of rest) expect(tab.delivered).toEqual(texts(1, 8));
    for (const tab of rest) tab.source.stop();
  });

  it('a closed leader tab resigns at once; a tab that opens later resumes from its stored position through the leader', async () => {
    const name = uniqueName();
    const locks = createLocks();
    const a = openTab(name, { locks: locks.forTab('a') });
    await until(() => a.leading !== undefined, 'a to lead');
    a.leading?.resume(6);
    // A new tab whose storage says it has seen up to n2: n3–n6 come from the leader's kept events.
    const b = openTab(name, { locks: locks.forTab('b'), since: id(2) });
    await until(() => b.delivered.length === 4, 'the replay');
    expect(b.delivered).toEqual(texts(3, 6));
    expect(b.directs).toHaveLength(0);

    const c = openTab(name, { locks: locks.forTab('c'), since: id(6) });
    await until(() => c.statuses.at(-1) === 'live', 'c to hear the status');

    a.source.stop();
    await until(() => b.leading !== undefined, 'b to lead');
    expect(b.leading?.handlers?.since()).toBe(id(6));
    await until(() => c.statuses.at(-1) === 'live', "c to hear b's status");
    // The old leader's source said `offline` as it stopped: that was a's own business.
    expect(c.statuses).not.toContain('offline');
    b.source.stop();
    c.source.stop();
  });

  it("a follower's request runs on the leader's connection; its failure crosses with its code", async () => {
    const name = uniqueName();
    const locks = createLocks();
    const a = openTab(name, { locks: locks.forTab('a') });
    await until(() => a.leading !== undefined, 'a to lead');
    const b = openTab(name, { locks: locks.forTab('b') });
    await until(() => b.statuses.at(-1) === 'live', 'b to hear the status');
    const direct = a.leading;
    if (!direct) throw new Error('no leader');
    direct.answer = async () => ({ markNotificationsRead: { readUpTo: id(1) } });
    await expect(b.source.request({ query: 'mutation M { x }', variables: { upTo: id(1) } })).resolves.toEqual({ markNotificationsRead: { readUpTo: id(1) } });
    expect(direct.requests).toEqual([{ query: 'mutation M { x }', variables: { upTo: id(1) } }]);
    // A GraphQL answer stays one (the inbox gives up on it); a dropped connection stays a plain error (it retries).
    direct.answer = () => Promise.reject(new GraphQLResultError({ code: 'FORBIDDEN', message: 'not yours' }));
    const refused = await b.source.request({ query: 'mutation M { x }' }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(GraphQLResultError);
    expect((refused as GraphQLResultError).failure).toEqual({ code: 'FORBIDDEN', message: 'not yours' });
    direct.answer = () => Promise.reject(new Error('the connection closed'));
    const dropped = await b.source.request({ query: 'mutation M { x }' }).catch((error: unknown) => error);
    expect(dropped).not.toBeInstanceOf(GraphQLResultError);
    a.source.stop();
    b.source.stop();
  });

  it("a fatal end on the leader's connection ends every tab's session", async () => {
    const name = uniqueName();
    const locks = createLocks();
    const a = openTab(name, { locks: locks.forTab('a') });
    await until(() => a.leading !== undefined, 'a to lead');
    const b = openTab(name, { locks: locks.forTab('b') });
    await until(() => b.statuses.at(-1) === 'live', 'b to hear the status');
    const { HeraldSessionError } = await import('../../packages/client/src/types.js');
    a.leading?.handlers?.fatal(new HeraldSessionError('FORBIDDEN', 'the token was refused'));
    await until(() => b.fatals.length === 1, "b's session to end");
    expect(a.fatals.map((error) => error.code)).toEqual(['FORBIDDEN']);
    expect(b.fatals.map((error) => error.code)).toEqual(['FORBIDDEN']);
    // Had the lock reached b first, b's connection is closed too: no tab carries on.
    expect(b.directs.every((direct) => direct.stopped)).toBe(true);
  });

  it(`a follower further behind than the ${REPLAY_LIMIT} kept events is told of a gap, then gets what is kept`, async () => {
    const name = uniqueName();
    const locks = createLocks();
    const a = openTab(name, { locks: locks.forTab('a') });
    await until(() => a.leading !== undefined, 'a to lead');
    a.leading?.resume(REPLAY_LIMIT + 20);
    const b = openTab(name, { locks: locks.forTab('b'), since: id(5) });
    await until(() => b.delivered.length === REPLAY_LIMIT, 'the replay');
    expect(b.gaps).toHaveLength(1);
    expect(b.delivered).toEqual(texts(21, REPLAY_LIMIT + 20));
    a.source.stop();
    b.source.stop();
  });
});

describe('the bytes a tab keeps for a rejoining tab', () => {
  /** A notification event's size as the kept events count it. */
  const bytesOf = (n: number): number => new TextEncoder().encode(JSON.stringify({ type: 'notification', notification: notification(n) })).length;

  it('defaults to 1 MiB', () => {
    expect(REPLAY_BYTES).toBe(1024 * 1024);
  });

  it('drops the oldest past the byte bound, and a tab behind them is told of a gap, then gets the kept tail once, in order', async () => {
    const name = uniqueName();
    const locks = createLocks();
    // Room for the last 10 of 30 (n21..n30 are all the same size), not 11.
    const bound = 10 * bytesOf(30) + 1;
    const a = openTab(name, { locks: locks.forTab('a'), replayBytes: bound });
    await until(() => a.leading !== undefined, 'a to lead');
    a.leading?.resume(30);
    const b = openTab(name, { locks: locks.forTab('b'), since: id(5), replayBytes: bound });
    await until(() => b.delivered.length === 10, 'the replay of the kept tail');
    expect(b.gaps).toHaveLength(1);
    expect(b.gaps[0]?.since).toBe(id(5));
    expect(b.delivered).toEqual(texts(21, 30));
    a.source.stop();
    b.source.stop();
  });

  it('a tab behind by less than the bound gets all it missed, once, with no gap', async () => {
    const name = uniqueName();
    const locks = createLocks();
    const bound = 10 * bytesOf(30) + 1;
    const a = openTab(name, { locks: locks.forTab('a'), replayBytes: bound });
    await until(() => a.leading !== undefined, 'a to lead');
    a.leading?.resume(30);
    const b = openTab(name, { locks: locks.forTab('b'), since: id(22), replayBytes: bound });
    // The replay ends with the leader's status: once it is heard, nothing more of it comes.
    await until(() => b.statuses.at(-1) === 'live', 'the replay to end');
    expect(b.gaps).toEqual([]);
    expect(b.delivered).toEqual(texts(23, 30));
    a.source.stop();
    b.source.stop();
  });
});

describe('shared tabs without Web Locks (heartbeat fallback)', () => {
  it('elects one leader; when it closes another takes over and nothing is lost or repeated', async () => {
    const name = uniqueName();
    const tabs = [openTab(name), openTab(name), openTab(name)];
    await until(() => tabs.filter((tab) => tab.leading).length === 1, 'one leader');
    // It stays one: the others hear its beats.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(tabs.filter((tab) => tab.leading)).toHaveLength(1);
    const first = tabs.find((tab) => tab.leading);
    first?.leading?.resume(4);
    for (const tab of tabs) await until(() => tab.delivered.length === 4, 'four notifications');
    first?.source.stop();
    const rest = tabs.filter((tab) => tab !== first);
    await until(() => rest.filter((tab) => tab.leading).length === 1, 'a new leader');
    rest.find((tab) => tab.leading)?.leading?.resume(7);
    for (const tab of rest) await until(() => tab.delivered.length === 7, 'seven notifications');
    for (const tab of rest) expect(tab.delivered).toEqual(texts(1, 7));
    for (const tab of rest) tab.source.stop();
  });
});

describe('what arrives on the channel', () => {
  it('is checked: anything malformed is ignored', () => {
    expect(parseMessage(null)).toBeUndefined();
    expect(parseMessage({ kind: 'event', tab: 'a', event: { type: 'notification', notification: { id: 1 } } })).toBeUndefined();
    expect(parseMessage({ kind: 'event', tab: 'a', event: { type: 'status', status: 'dancing' } })).toBeUndefined();
    expect(parseMessage({ kind: 'request', tab: 'a', id: 1, operation: {} })).toBeUndefined();
    expect(parseMessage({ kind: 'hello', tab: 'a', since: 5 })).toBeUndefined();
    expect(parseMessage({ kind: 'launch', tab: 'a' })).toBeUndefined();
    expect(parseMessage({ kind: 'event', tab: 'a', event: { type: 'notification', notification: notification(1) } })).toEqual({
      kind: 'event',
      tab: 'a',
      event: { type: 'notification', notification: notification(1) },
    });
  });
});
