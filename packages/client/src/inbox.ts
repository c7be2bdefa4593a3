/**
 * The inbox store: the recent notifications, the read position and the unread count,
 * kept in step with the server — seeded by the `notifications` query when first live,
 * advanced by delivered notifications and by `ReadStateChange` events from any device.
 * `markRead` applies locally at once and reaches the server once: calls made while
 * offline wait, collapsed into the furthest position, until the client is live.
 */
import { compareNotificationIds } from './position.js';
import { GraphQLResultError, isRecord, MARK_READ_MUTATION, RECENT_QUERY } from './graphql.js';
import type { SourceOperation } from './source.js';
import type { HeraldInbox, HeraldNotification, HeraldSessionError, HeraldStatus } from './types.js';

export interface InboxOptions {
  userName: string;
  recentLimit: number;
  /** Runs an operation over the client's connection. */
  request(operation: SourceOperation): Promise<unknown>;
  /** Reports an error nobody awaits (a listener that threw). */
  report(error: unknown): void;
}

export interface InboxStore {
  readonly inbox: HeraldInbox;
  /** A notification was delivered to the app. */
  added(notification: HeraldNotification): void;
  /** The server says the read position is now `readUpTo`. */
  readStateChanged(readUpTo: string): void;
  /** The connection's status: once live, seed (once) and send what is queued. */
  status(status: HeraldStatus): void;
  /** The session ended: queued `markRead`s reject. */
  failed(error: HeraldSessionError): void;
  /**
   * Notifications may have been missed (history did not reach back far enough, or the
   * server began a new history): the list is emptied and read again from the server,
   * now if live, else when next live.
   */
  gap(): void;
}

/** True when `a` is after `b`; ids of another epoch count as after (a new history). */
function isAfter(a: string, b: string | undefined): boolean {
  if (b === undefined) return true;
  const order = compareNotificationIds(a, b);
  return order === undefined ? a !== b : order > 0;
}

export function createInboxStore(options: InboxOptions): InboxStore {
  let recent: HeraldNotification[] = [];
  let readUpTo: string | undefined;
  let unreadCount = 0;
  /**
   * Unread notifications older than all of `recent`: the server's count (up to 100) tells
   * of those the recent list does not hold. Zero once the read position passes the oldest
   * one held, since everything before it is then read too.
   */
  let olderUnread = 0;
  let isLive = false;
  let seeded = false;
  /** The furthest position asked for and not yet sent. */
  let queued: string | undefined;
  let waiting: { resolve(): void; reject(error: unknown): void }[] = [];
  let sending = false;
  const listeners = new Set<() => void>();

  const changed = (): void => {
    unreadCount = recent.filter((notification) => isAfter(notification.id, readUpTo)).length + olderUnread;
    for (const listener of [...listeners]) {
      try {
        listener();
      } catch (error) {
        options.report(error);
      }
    }
  };

  const merge = (notifications: readonly HeraldNotification[]): void => {
    const byId = new Map(recent.map((notification) => [notification.id, notification]));
    for (const notification of notifications) byId.set(notification.id, notification);
    const sorted = [...byId.values()].sort((a, b) => (isAfter(a.id, b.id) ? -1 : isAfter(b.id, a.id) ? 1 : 0));
    recent = sorted.slice(0, options.recentLimit);
    // What falls off the end of the list and is unread is still unread.
    olderUnread += sorted.slice(options.recentLimit).filter((notification) => isAfter(notification.id, readUpTo)).length;
  };

  const moveReadTo = (id: string): boolean => {
    if (!isAfter(id, readUpTo)) return false;
    readUpTo = id;
    const oldest = recent[recent.length - 1];
    if (oldest !== undefined && !isAfter(oldest.id, id)) olderUnread = 0;
    return true;
  };

  const seed = async (): Promise<void> => {
    try {
      const data = await options.request({ query: RECENT_QUERY, variables: { first: Math.min(100, options.recentLimit) } });
      const page = isRecord(data) ? data['notifications'] : undefined;
      if (!isRecord(page)) return;
      const edges = Array.isArray(page['edges']) ? page['edges'] : [];
      const nodes = edges.map((edge: unknown) => (isRecord(edge) ? edge['node'] : undefined)).filter(isNotification);
      merge(nodes);
      if (typeof page['readUpTo'] === 'string') moveReadTo(page['readUpTo']);
      // The server counts as of its page: a held notification newer than the page's newest
      // came live since, and is not in its count.
      const newest = nodes[0]?.id;
      const unreadHeld = newest === undefined ? 0 : recent.filter((notification) => isAfter(notification.id, readUpTo) && !isAfter(notification.id, newest)).length;
      if (typeof page['unreadCount'] === 'number') olderUnread = Math.max(0, page['unreadCount'] - unreadHeld);
      changed();
    } catch {
      seeded = false; // tried again when next live
    }
  };

  const flush = async (): Promise<void> => {
    if (sending || !isLive || queued === undefined) return;
    sending = true;
    const upTo = queued;
    const settled = waiting;
    queued = undefined;
    waiting = [];
    try {
      await options.request({ query: MARK_READ_MUTATION, variables: { userName: options.userName, upTo } });
      for (const waiter of settled) waiter.resolve();
    } catch (error) {
      if (error instanceof GraphQLResultError) for (const waiter of settled) waiter.reject(error);
      else {
        // Not answered (the session is ending, or the connection went): keep it queued.
        if (queued === undefined || isAfter(upTo, queued)) queued = upTo;
        waiting.unshift(...settled);
      }
    } finally {
      sending = false;
    }
    void flush();
  };

  const inbox: HeraldInbox = {
    get unreadCount() {
      return unreadCount;
    },
    get recent() {
      return recent;
    },
    get readUpTo() {
      return readUpTo;
    },
    markRead(id) {
      const upTo = id ?? recent[0]?.id;
      if (upTo === undefined) return Promise.resolve();
      if (moveReadTo(upTo)) changed();
      if (queued === undefined || isAfter(upTo, queued)) queued = upTo;
      const done = new Promise<void>((resolve, reject) => waiting.push({ resolve, reject }));
      void flush();
      return done;
    },
    onChange(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
  };

  return {
    inbox,
    added(notification) {
      merge([notification]);
      changed();
    },
    readStateChanged(id) {
      if (moveReadTo(id)) changed();
    },
    status(status) {
      isLive = status === 'live';
      if (!isLive) return;
      if (!seeded) {
        seeded = true;
        void seed();
      }
      void flush();
    },
    gap() {
      recent = [];
      readUpTo = undefined;
      olderUnread = 0;
      seeded = isLive;
      if (isLive) void seed();
      changed();
    },
    failed(error) {
      isLive = false;
      for (const waiter of waiting.splice(0)) waiter.reject(error);
      queued = undefined;
    },
  };
}

function isNotification(value: unknown): value is HeraldNotification {
  return isRecord(value) && typeof value['id'] === 'string' && typeof value['text'] === 'string';
}
