/**
 * The direct source: one graphql-ws client holding one WebSocket, subscribed to
 * `onInboxEvent` with `since` = the core's position at every (re)subscribe, reconnecting
 * for ever with full jitter, following Herald's close codes, and refreshing the token on
 * the live connection before it expires.
 */
import { createClient, type Client } from 'graphql-ws/client';
import { reconnectDelay, type BackoffOptions } from './backoff.js';
import { closeVerdict, type CloseVerdict } from './close-policy.js';
import { firstFailure, GraphQLResultError, INBOX_SUBSCRIPTION, isRecord, REFRESH_TOKEN_MUTATION } from './graphql.js';
import type { NotificationSource, SourceHandlers, SourceOperation } from './source.js';
import { readTokenClaims, refreshAt, type TokenSupplier } from './token.js';
import { HeraldSessionError, type HeraldAudience, type HeraldNotification } from './types.js';

export interface WebSocketSourceOptions {
  /** The subscribe server's `ws://…/graphql`. */
  url: string;
  userName: string;
  tokens: TokenSupplier;
  /** @default globalThis.WebSocket */
  webSocketImpl?: unknown;
  /** Idle time before the client pings, in ms; a ping not answered within `pongTimeoutMs` drops the connection. @default 10000 */
  keepAliveMs?: number;
  /** @default 5000 */
  pongTimeoutMs?: number;
  /** Time from opening a socket to `connection_ack` before it is dropped and tried again, in ms. @default 10000 */
  handshakeTimeoutMs?: number;
  /** @default 500 ms to 20 s */
  backoff?: BackoffOptions;
}

/** Errors on the subscription that no reconnect cures: the token, or the user it is for, is refused. */
const SESSION_ENDING_CODES = new Set(['FORBIDDEN', 'UNAUTHENTICATED', 'BAD_USER_INPUT']);

/** A close event as graphql-ws reports it (the DOM's, or `ws`'s). */
interface CloseLike {
  readonly code: number;
  readonly reason: string;
}

function isCloseLike(value: unknown): value is CloseLike {
  return isRecord(value) && typeof value['code'] === 'number' && typeof value['reason'] === 'string';
}

/** The platform's event target (`window`, `document`) where there is one. */
interface Listenable {
  addEventListener(type: string, listener: () => void): void;
  removeEventListener(type: string, listener: () => void): void;
}

function globalListenable(name: 'window' | 'document'): Listenable | undefined {
  const candidate: unknown = (globalThis as Record<string, unknown>)[name];
  return isRecord(candidate) && typeof candidate['addEventListener'] === 'function' ? (candidate as unknown as Listenable) : undefined;
}

export function createWebSocketSource(options: WebSocketSourceOptions): NotificationSource {
  const { tokens, userName, keepAliveMs = 10_000, pongTimeoutMs = 5_000, handshakeTimeoutMs = 10_000 } = options;
  let handlers: SourceHandlers | undefined;
  let client: Client | undefined;
  let stopped = false;
  let acknowledged = false;
  let overloaded = false;
  /** Set when the session must end: makes graphql-ws stop retrying. */
  let fatal: HeraldSessionError | undefined;
  /** The token of the current connection. */
  let currentToken: string | undefined;
  /** A token to open the next connection with (a refresh the server wants on a new connection). */
  let nextToken: string | undefined;
  /** Reconnect at once instead of after the backoff (we dropped the connection on purpose). */
  let immediate = false;
  let wakeUp: (() => void) | undefined;
  let refreshTimer: ReturnType<typeof setTimeout> | undefined;
  let pongTimer: ReturnType<typeof setTimeout> | undefined;
  let handshakeTimer: ReturnType<typeof setTimeout> | undefined;
  let unsubscribe: (() => void) | undefined;
  /** Subscribe attempts since the last that delivered anything (for our own retries, after graphql-ws gave up on a close). */
  let resubscribes = 0;

  const clearTimers = (): void => {
    clearTimeout(refreshTimer);
    clearTimeout(pongTimer);
    clearTimeout(handshakeTimer);
  };

  /** Waits `ms`, or less if the browser comes online or the tab becomes visible. */
  const pause = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        wakeUp = undefined;
        resolve();
      }
      wakeUp = done;
    });

  const end = (error: HeraldSessionError): void => {
    if (stopped) return;
    fatal ??= error;
    stop();
    handlers?.fatal(fatal);
  };

  const verdictOf = (event: CloseLike): CloseVerdict => closeVerdict(event.code, event.reason, { acknowledged, refreshable: tokens.refreshable });

  const onClosed = (event: unknown): void => {
    clearTimers();
    const wasAcknowledged = acknowledged;
    if (isCloseLike(event)) {
      const verdict = verdictOf(event);
      acknowledged = false;
      if (verdict === 'stop' && !stopped) {
        const why = event.code === 4403 && wasAcknowledged ? 'the token expired and cannot be refreshed (pass a function as `token`)' : `the server closed the connection: ${event.code} ${event.reason}`;
        fatal ??= new HeraldSessionError(event.code === 4403 ? 'FORBIDDEN' : `CLOSE_${event.code}`, why);
        // graphql-ws calls shouldRetry next, which now says no; the subscription's sink reports it.
      }
      overloaded = verdict === 'resume-overloaded';
    }
    acknowledged = false;
    if (!stopped && fatal === undefined) handlers?.status('connecting');
  };

  const armRefresh = (token: string): void => {
    clearTimeout(refreshTimer);
    if (!tokens.refreshable) return;
    const at = refreshAt(readTokenClaims(token), Date.now());
    if (at === undefined) return;
    refreshTimer = setTimeout(() => void refresh(), Math.max(0, at - Date.now()));
  };

  const refresh = async (): Promise<void> => {
    let fresh: string;
    try {
      fresh = await tokens.next();
    } catch (error) {
      return end(new HeraldSessionError('TOKEN', `the token function failed: ${String(error)}`, { cause: error }));
    }
    if (stopped || !acknowledged) return;
    try {
      await request({ query: REFRESH_TOKEN_MUTATION, variables: { token: fresh } });
      currentToken = fresh;
      armRefresh(fresh);
    } catch (error) {
      if (stopped) return;
      const failure = error instanceof GraphQLResultError ? error.failure : undefined;
      // Herald's words for "same user, other grants": the only refusal a new connection cures.
      if (failure && (failure.code === 'FORBIDDEN' || failure.code === 'UNAUTHENTICATED') && !/reconnect with the new token/i.test(failure.message)) {
        return end(new HeraldSessionError(failure.code, `token refresh refused: ${failure.message}`, { cause: error }));
      }
      // The claims differ in stores or scope (the server wants a new connection), or the
      // server predates in-band refresh: reconnect with the fresh token, resuming with `since`.
      if (failure) reconnectWith(fresh);
    }
  };

  const reconnectWith = (token: string): void => {
    nextToken = token;
    immediate = true;
    client?.terminate();
  };

  const onNext = (result: unknown): void => {
    if (!isRecord(result) || !handlers) return;
    resubscribes = 0;
    const failure = firstFailure(result['errors']);
    if (failure?.code === 'HISTORY_GAP') handlers.gap({ reason: failure.message, since: handlers.since() });
    else if (failure && SESSION_ENDING_CODES.has(failure.code)) return end(new HeraldSessionError(failure.code, `the subscription was refused: ${failure.message}`));
    const data = result['data'];
    const event = isRecord(data) ? data['onInboxEvent'] : undefined;
    if (!isRecord(event)) return;
    if (event['__typename'] === 'ReadStateChange' && typeof event['readUpTo'] === 'string') return handlers.readState(event['readUpTo']);
    if (typeof event['id'] !== 'string') return;
    const notification: HeraldNotification = {
      id: event['id'],
      text: String(event['text']),
      timestamp: Number(event['timestamp']),
      audience: String(event['audience']) as HeraldAudience,
      ...(typeof event['sender'] === 'string' ? { sender: event['sender'] } : {}),
    };
    handlers.notification(notification);
  };

  const subscribe = (): void => {
    if (stopped || !client) return;
    // `variables` is a getter: graphql-ws serialises the payload again for every socket it
    // resubscribes on, so each reconnect asks for what came after the position *then*.
    const payload = {
      query: INBOX_SUBSCRIPTION,
      get variables() {
        return { userName, since: handlers?.since() ?? null };
      },
    };
    unsubscribe = client.subscribe(payload, {
      next: onNext,
      error: (error) => void afterSubscriptionEnded(error),
      complete: () => void afterSubscriptionEnded(undefined),
    });
  };

  /** graphql-ws gave up on the subscription: a fatal close, an `error` message, or a complete. */
  const afterSubscriptionEnded = async (error: unknown): Promise<void> => {
    if (stopped) return;
    if (fatal) return end(fatal);
    const failure = firstFailure(error);
    if (failure && SESSION_ENDING_CODES.has(failure.code)) {
      return end(new HeraldSessionError(failure.code, `the subscription was refused: ${failure.message}`));
    }
    if (isCloseLike(error) && verdictOf(error) === 'stop') return end(new HeraldSessionError(`CLOSE_${error.code}`, `the server closed the connection: ${error.code} ${error.reason}`));
    // graphql-ws' own fatal codes (4429, 4500, 4400, …) and completes: we resume ourselves.
    await pause(reconnectDelay(resubscribes++, overloaded || (isCloseLike(error) && verdictOf(error) === 'resume-overloaded'), options.backoff));
    subscribe();
  };

  const request = (operation: SourceOperation): Promise<unknown> =>
    new Promise((resolve, reject) => {
      if (!client || stopped) return reject(fatal ?? new HeraldSessionError('CLOSED', 'the client is closed'));
      let data: unknown;
      client.subscribe(
        { query: operation.query, variables: operation.variables ?? {} },
        {
          next: (result) => {
            const failure = isRecord(result) ? firstFailure(result['errors']) : undefined;
            if (failure) reject(new GraphQLResultError(failure));
            else data = isRecord(result) ? result['data'] : undefined;
          },
          error: (error) => {
            const failure = firstFailure(error);
            reject(failure ? new GraphQLResultError(failure) : fatal ?? error);
          },
          complete: () => resolve(data),
        },
      );
    });

  const wake = (): void => wakeUp?.();
  const onVisibility = (): void => {
    const state: unknown = (globalThis as Record<string, unknown>)['document'];
    if (isRecord(state) && state['visibilityState'] === 'visible') wake();
  };
  const onOffline = (): void => {
    if (!acknowledged) handlers?.status('offline');
  };
  const windowTarget = globalListenable('window');
  const documentTarget = globalListenable('document');

  const start = (given: SourceHandlers): void => {
    handlers = given;
    given.status('connecting');
    windowTarget?.addEventListener('online', wake);
    windowTarget?.addEventListener('offline', onOffline);
    documentTarget?.addEventListener('visibilitychange', onVisibility);
    client = createClient({
      url: options.url,
      ...(options.webSocketImpl === undefined ? {} : { webSocketImpl: options.webSocketImpl }),
      lazy: true,
      retryAttempts: Infinity,
      keepAlive: keepAliveMs,
      shouldRetry: () => !stopped && fatal === undefined,
      retryWait: async (retries) => {
        if (immediate) {
          immediate = false;
          return;
        }
        await pause(reconnectDelay(retries, overloaded, options.backoff));
      },
      connectionParams: async () => {
        let token: string;
        try {
          token = nextToken ?? (await tokens.next());
        } catch (error) {
          fatal ??= new HeraldSessionError('TOKEN', `the token function failed: ${String(error)}`, { cause: error });
          throw error;
        }
        nextToken = undefined;
        currentToken = token;
        return { authorization: `Bearer ${token}` };
      },
      on: {
        connecting: () => {
          clearTimeout(handshakeTimer);
          // graphql-ws has no timeout of its own for a socket that opens (or is acknowledged) never.
          handshakeTimer = setTimeout(() => client?.terminate(), handshakeTimeoutMs);
        },
        connected: () => {
          clearTimeout(handshakeTimer);
          acknowledged = true;
          overloaded = false;
          handlers?.status('live');
          if (currentToken !== undefined) armRefresh(currentToken);
        },
        ping: (received) => {
          if (received) return;
          clearTimeout(pongTimer);
          // A connection whose peer vanished (a cut network, a frozen NAT) closes only when TCP gives up: minutes.
          pongTimer = setTimeout(() => client?.terminate(), pongTimeoutMs);
        },
        pong: (received) => {
          if (received) clearTimeout(pongTimer);
        },
        closed: onClosed,
      },
    });
    subscribe();
  };

  function stop(): void {
    if (stopped) return;
    stopped = true;
    clearTimers();
    wakeUp?.();
    windowTarget?.removeEventListener('online', wake);
    windowTarget?.removeEventListener('offline', onOffline);
    documentTarget?.removeEventListener('visibilitychange', onVisibility);
    unsubscribe?.();
    void client?.dispose();
    handlers?.status('offline');
  }

  return { start, request, stop };
}
