/**
 * The public types of `@herald/client`: what `createHeraldClient` and
 * `createHeraldPublisher` take and return (the contract in DESIGN.md, "Client package").
 */

/** Where a notification came from: one of the subscriber's channels. */
export type HeraldAudience = 'USER' | 'STORE' | 'COMPANY' | 'TOPIC';

/** A notification as the subscription selects it. */
export interface HeraldNotification {
  /** Its id, also its resume cursor: `<epoch>_<ms>-<seq>`, ordered within one epoch. */
  readonly id: string;
  readonly text: string;
  /** When the publish server accepted it, in Unix seconds. */
  readonly timestamp: number;
  readonly audience: HeraldAudience;
  /** The `sub` of the service that sent it. */
  readonly sender?: string;
}

/**
 * `connecting`: no live subscription yet (first connect, or reconnecting after a drop);
 * `live`: subscribed, notifications flow; `offline`: given up for now or for good — the
 * browser is offline, or the session ended (see `onError`), or `close()` was called.
 */
export type HeraldStatus = 'connecting' | 'live' | 'offline';

/** Notifications were lost between `since` and now: refetch the `notifications` query. */
export interface HeraldGap {
  /** The server's reason, or why the client concluded there is a gap (a new history epoch). */
  readonly reason: string;
  /** The last id delivered before the gap, if any. */
  readonly since: string | undefined;
}

/** Why a session ended for good: the client stopped and will not reconnect. */
export class HeraldSessionError extends Error {
  override readonly name = 'HeraldSessionError';
  constructor(
    /** `FORBIDDEN` (4403 close or a refused refresh), `UNAUTHENTICATED`, `TOKEN` (the token function threw), … */
    readonly code: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** A token, or a function that gets a fresh one (called for every connection and before each expiry). */
export type TokenSource = string | (() => string | Promise<string>);

/** The part of Web Storage the client uses; `localStorage` fits. */
export interface KeyValueStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** A WebSocket constructor as graphql-ws takes it: the browser's, or `ws`'s in Node. */
export type WebSocketConstructor = unknown;

export interface HeraldClientOptions {
  /** The subscribe server's `ws://…/graphql` (or `wss://`). */
  url: string;
  /**
   * The user's token, or a function that returns a fresh one. A function is called for
   * every connection and again before the current token expires (at 75 % of its lifetime
   * or 10 s before `exp`, whichever comes first); the new token is handed to the server
   * on the live connection, so no subscription ends. A string cannot be refreshed: when it
   * expires the server closes the connection and the session ends (`onError`).
   * A function that throws or rejects ends the session the same way.
   */
  token: TokenSource;
  /** Whose notifications: must be the token's `sub`. @default the token's `sub` claim */
  userName?: string;
  /**
   * Where the last delivered id is kept, per user, so a reload resumes from it.
   * @default `localStorage` in a browser, memory elsewhere
   */
  storage?: KeyValueStorage;
  /** The WebSocket class. In Node pass `ws`'s default export. @default `globalThis.WebSocket` */
  webSocketImpl?: WebSocketConstructor;
  /**
   * Share one connection among the tabs of an origin (a leader tab holds it, the others
   * receive through a BroadcastChannel). @default true where `BroadcastChannel` exists in a browser, else false
   */
  shared?: boolean;
  /**
   * With `shared`: the most bytes of events (their JSON, in UTF-8) each tab keeps for a tab
   * that rejoins (opened, or back from the back/forward cache), besides the last 100
   * events. Oldest dropped first; a tab further behind is told of a gap (`onGap`).
   * @default 1048576 (1 MiB)
   */
  sharedReplayBytes?: number;
  /** Notifications kept in `inbox.recent`, newest first. @default 50 */
  recentLimit?: number;
}

/** The inbox store: a bell's badge and list. */
export interface HeraldInbox {
  /** How many notifications are newer than the user's read position (as far as this client knows). */
  readonly unreadCount: number;
  /** The most recent notifications delivered, newest first (at most `recentLimit`). */
  readonly recent: readonly HeraldNotification[];
  /** The user's read position: the newest id read, if known. */
  readonly readUpTo: string | undefined;
  /**
   * Marks every notification up to `id` read (default: the newest delivered). Applied
   * locally at once; sent to the server once, when the client is live (queued while
   * offline; several queued calls collapse into the furthest). Resolves when the server
   * has it; rejects only if the session ends first.
   */
  markRead(id?: string): Promise<void>;
  /** Called whenever `unreadCount`, `recent` or `readUpTo` changes. Returns the unsubscribe. */
  onChange(listener: () => void): () => void;
}

export interface HeraldClient {
  /** Each notification exactly once, in order. Returns the unsubscribe. */
  onNotification(listener: (notification: HeraldNotification) => void): () => void;
  /** Notifications were lost (`HISTORY_GAP`, or a new history epoch): refetch. */
  onGap(listener: (gap: HeraldGap) => void): () => void;
  /** The connection's state; called with the current one at once. */
  onStatus(listener: (status: HeraldStatus) => void): () => void;
  /** The session ended for good (a refused token or refresh, 4403): it will not reconnect. */
  onError(listener: (error: HeraldSessionError) => void): () => void;
  /** The current status. */
  readonly status: HeraldStatus;
  readonly inbox: HeraldInbox;
  /** Closes the connection and removes every listener it added (online, visibility). */
  close(): void;
}

/** One notification to send. */
export interface SendInput {
  /** A user name, store id, tenant id or topic, as `audience` says. */
  to: string;
  text: string;
  /** @default 'USER' */
  audience?: HeraldAudience;
  /** @default 'WHEN_OFFLINE' (the server's default) */
  push?: 'ALWAYS' | 'NEVER' | 'WHEN_OFFLINE';
  /** Made per call when absent; retries of the call reuse it, so it is stored at most once. */
  idempotencyKey?: string;
}

export interface SendResult {
  /** The notification's id. */
  readonly id: string;
  /** Live subscriptions it reached, across all subscribe servers (for a duplicate: as counted the first time). */
  readonly receivedUsers: number;
  /**
   * True when it was already stored under its `idempotencyKey` — by an earlier attempt of
   * this call whose answer was lost, or by an earlier call with the same key — and not
   * sent again.
   */
  readonly duplicate: boolean;
}

export interface HeraldPublisherOptions {
  /** The publish server's `http://…/graphql`. */
  url: string;
  /** A service token with the `notifications:publish` scope, or a function returning one (called per attempt). */
  token: TokenSource;
  /**
   * How long one `send` or `sendMany` keeps retrying `OUTCOME_UNKNOWN`,
   * `SERVICE_UNAVAILABLE` and network errors before it rejects, in ms. @default 30000
   */
  deadlineMs?: number;
  /** One attempt's HTTP timeout, in ms; a timeout counts as a network error. @default 10000 */
  attemptTimeoutMs?: number;
  /** The fetch to use. @default globalThis.fetch */
  fetch?: typeof globalThis.fetch;
}

/** Why a send failed, and whether it may have been stored anyway. */
export class HeraldSendError extends Error {
  override readonly name = 'HeraldSendError';
  constructor(
    /** The server's `extensions.code`, or `NETWORK` / `DEADLINE`. */
    readonly code: string,
    message: string,
    /**
     * True when some attempt may have reached the server and been stored (a network error
     * after the request was sent, `OUTCOME_UNKNOWN`): sending again with the same
     * `idempotencyKey` is safe. False when the server refused it (nothing stored).
     */
    readonly mayHaveBeenStored: boolean,
    /** The key every attempt used. */
    readonly idempotencyKey: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export interface HeraldPublisher {
  /** Sends one notification; resolves once it is stored exactly once. */
  send(input: SendInput): Promise<SendResult>;
  /** Sends up to 1000 in one request (all or none refused); results in input order. */
  sendMany(inputs: readonly SendInput[]): Promise<SendResult[]>;
}
