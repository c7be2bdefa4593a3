/**
 * `createHeraldClient`: the core over a {@link NotificationSource} — the position (resume
 * and dedupe), the app's listeners, the inbox store. It hands each notification to the
 * app exactly once, in order, whatever the source repeats.
 */
import { createWebSocketSource } from './connection.js';
import { createInboxStore } from './inbox.js';
import { createMemoryStorage, createPosition, type Position } from './position.js';
import { canShare, createSharedSource } from './shared.js';
import type { NotificationSource, SourceHandlers } from './source.js';
import { createTokenSupplier, readTokenClaims, type TokenSupplier } from './token.js';
import {
  HeraldSessionError,
  type HeraldClient,
  type HeraldClientOptions,
  type HeraldGap,
  type HeraldNotification,
  type HeraldStatus,
  type KeyValueStorage,
} from './types.js';

/** Makes the source a client reads from, once its user is known. */
export type SourceFactory = (context: { options: HeraldClientOptions; userName: string; tokens: TokenSupplier }) => NotificationSource;

/**
 * Where notifications come from. The shared-tab layer (`shared.ts`) plugs in here:
 * with `shared` on in a browser, the leader tab runs the direct source and the others a
 * follower source.
 */
const directSource: SourceFactory = ({ options, userName, tokens }) =>
  createWebSocketSource({ url: options.url, userName, tokens, ...(options.webSocketImpl === undefined ? {} : { webSocketImpl: options.webSocketImpl }) });

/** `localStorage` where the platform has one that works, else memory. */
function defaultStorage(): KeyValueStorage {
  try {
    const candidate: unknown = (globalThis as Record<string, unknown>)['localStorage'];
    if (typeof candidate === 'object' && candidate !== null && 'getItem' in candidate && 'setItem' in candidate) return candidate as KeyValueStorage;
  } catch {
    // Access itself throws where storage is blocked (sandboxed iframes, some privacy modes).
  }
  return createMemoryStorage();
}

/** Rethrows outside the delivery path: a listener that throws must not stop delivery to the others. */
function reportListenerError(error: unknown): void {
  setTimeout(() => {
    throw error;
  });
}

function emit<T>(listeners: Set<(value: T) => void>, value: T): void {
  for (const listener of [...listeners]) {
    try {
      listener(value);
    } catch (error) {
      reportListenerError(error);
    }
  }
}

/** `shared` (default: in a browser with BroadcastChannel): one leader tab per URL and user holds the connection. */
const sharedOrDirectSource: SourceFactory = (context) =>
  (context.options.shared ?? canShare())
    ? createSharedSource({
        name: `herald:${context.options.url}:${context.userName}`,
        connect: () => directSource(context),
        ...(context.options.sharedReplayBytes === undefined ? {} : { replayBytes: context.options.sharedReplayBytes }),
      })
    : directSource(context);

export function createHeraldClient(options: HeraldClientOptions): HeraldClient {
  return createClientCore(options, sharedOrDirectSource);
}

/** The client over the source `makeSource` builds (exported for the shared-tab layer and tests). */
export function createClientCore(options: HeraldClientOptions, makeSource: SourceFactory): HeraldClient {
  const notificationListeners = new Set<(notification: HeraldNotification) => void>();
  const gapListeners = new Set<(gap: HeraldGap) => void>();
  const statusListeners = new Set<(status: HeraldStatus) => void>();
  const errorListeners = new Set<(error: HeraldSessionError) => void>();
  const storage = options.storage ?? defaultStorage();
  const tokens = createTokenSupplier(options.token);
  let status: HeraldStatus = 'connecting';
  let closed = false;
  let source: NotificationSource | undefined;
  let position: Position | undefined;
  let userName = options.userName;
  let ended: HeraldSessionError | undefined;

  const setStatus = (next: HeraldStatus): void => {
    if (next === status) return;
    status = next;
    store.status(next);
    emit(statusListeners, next);
  };

  const fail = (error: HeraldSessionError): void => {
    if (ended) return;
    ended = error;
    setStatus('offline');
    store.failed(error);
    // Loudly, even with nobody listening: a session that ended must not look like a quiet inbox.
    if (errorListeners.size === 0) console.error(error);
    emit(errorListeners, error);
  };

  const store = createInboxStore({
    get userName() {
      return userName ?? '';
    },
    recentLimit: options.recentLimit ?? 50,
    request: (operation) => (source ? source.request(operation) : Promise.reject(ended ?? new HeraldSessionError('CLOSED', 'not connected'))),
    report: reportListenerError,
  });

  const handlers: SourceHandlers = {
    since: () => position?.current,
    notification(notification) {
      if (!position) return;
      const before = position.current;
      const verdict = position.accept(notification.id);
      if (verdict === 'repeat') return;
      if (verdict === 'deliver-after-gap') {
        store.gap();
        emit(gapListeners, { reason: 'the server started a new history: notifications after the last one seen may be lost', since: before });
      }
      store.added(notification);
      emit(notificationListeners, notification);
    },
    readState: (readUpTo) => store.readStateChanged(readUpTo),
    gap: (gap) => {
      store.gap();
      emit(gapListeners, gap);
    },
    status: (next) => {
      if (!ended) setStatus(next);
    },
    fatal: fail,
  };

  const start = async (): Promise<void> => {
    if (userName === undefined) {
      let first: string;
      try {
        first = await tokens.peek();
      } catch (error) {
        return fail(new HeraldSessionError('TOKEN', `the token function failed: ${String(error)}`, { cause: error }));
      }
      userName = readTokenClaims(first).subject;
      if (userName === undefined) return fail(new HeraldSessionError('UNAUTHENTICATED', 'the token has no `sub` claim: pass `userName`'));
    }
    if (closed) return;
    position = createPosition(storage, userName);
    source = makeSource({ options, userName, tokens });
    source.start(handlers);
  };
  void start();

  return {
    onNotification(listener) {
      notificationListeners.add(listener);
      return () => void notificationListeners.delete(listener);
    },
    onGap(listener) {
      gapListeners.add(listener);
      return () => void gapListeners.delete(listener);
    },
    onStatus(listener) {
      statusListeners.add(listener);
      listener(status);
      return () => void statusListeners.delete(listener);
    },
    onError(listener) {
      errorListeners.add(listener);
      if (ended) listener(ended);
      return () => void errorListeners.delete(listener);
    },
    get status() {
      return status;
    },
    inbox: store.inbox,
    close() {
      if (closed) return;
      closed = true;
      source?.stop();
      setStatus('offline');
      notificationListeners.clear();
      gapListeners.clear();
      statusListeners.clear();
      errorListeners.clear();
    },
  };
}
