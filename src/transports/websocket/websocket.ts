/**
 * GraphQL over WebSocket (graphql-transport-ws) for the subscribe server. The only
 * module that imports `ws` and `graphql-ws`. graphql-ws' transport-free `makeServer`
 * speaks the protocol; this adapter feeds it `ws` sockets (instead of graphql-ws'
 * `useServer`, which reports every oversized frame as an "internal error" and runs one
 * keepalive timer per socket). It authenticates at `connection_init` (or from the
 * upgrade's `Authorization` header), closes the socket with 4403 when the token
 * expires, and never throws into the socket library: a bad frame, query or token is
 * answered with an error or a close code. Each subscription is opened on the core
 * (`subscriptions.openInto`) by this module, with a sink that writes to the socket, and
 * registered in graphql-ws' own `ctx.subscriptions` rather than held by graphql-ws (see
 * `subscribeHere`: a connection holds only what it needs, for idle memory); the token expiry that closes the connection (4403) ends its subscriptions, so none arms a
 * timer of its own. Every byte it sends on a socket is under that socket's
 * {@link SendBound}; a client's misbehaviour is logged once per connection and kind,
 * however often it repeats.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { createSourceEventStream, getOperationAST, GraphQLError, type DocumentNode, type ExecutionArgs, type GraphQLResolveInfo, type GraphQLSchema } from 'graphql';
import {
  CloseCode,
  GRAPHQL_TRANSPORT_WS_PROTOCOL,
  makeServer,
  MessageType,
  parseMessage,
  stringifyMessage,
  type Context,
  type Message,
  type SubscribePayload,
  type WebSocket as GraphQLWebSocket,
} from 'graphql-ws';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { AuthenticationError, bearerToken, type Principal, type TokenVerifier } from '../../auth/index.js';
import { graphqlError, type MaskError } from '../../common/errors.js';
import { bound as boundLogger, type Logger } from '../../common/logger.js';
import type { HotCounts } from '../../common/metrics.js';
import { runAt, type AfterThisTurn, type Cancel } from '../../common/timers.js';
import type { DocumentCache } from '../../graphql/documents.js';
import { requirePrincipal, yieldsReadState, type HeraldContext, type SubscriptionArguments } from '../../graphql/schema.js';
import { GRAPHQL_PATH, originRefusal, type OriginPolicy } from '../http/edge.js';
import type { Fanout, OperationPlan } from '../../graphql/render.js';
import { createFrameWriter, textFrame, type FrameWriter, type Outbox, type OutboxOwner } from './frames.js';
import { SendBound, UNINITIALISED_BUFFERED_BYTES, type SendBoundLimits } from './send-bound.js';
import type { Sink } from '../../core/sink.js';
import type { SubscriptionItem } from '../../common/notification.js';
import type { SinkHooks, Subscriptions } from '../../core/subscriptions.js';

export interface WebSocketTransportOptions {
  schema: GraphQLSchema;
  /** Where each subscription is opened. */
  subscriptions: Subscriptions;
  /** Renders each event once per distinct operation. */
  fanout: Fanout;
  /** When the frames held this turn are written: the fan-out plans' end of turn too. */
  afterThisTurn: AfterThisTurn;
  /** The one error mask (`common/errors.ts`). */
  maskError: MaskError;
  /** Parses and validates each operation's document (every one is authenticated, so kept). */
  documents: DocumentCache;
  verifier: TokenVerifier;
  origins: OriginPolicy;
  /** Largest frame accepted, in bytes; a bigger one closes the socket with 1009. */
  maxMessageBytes: number;
  /** Subscriptions one connection may hold at once. */
  maxSubscriptionsPerConnection: number;
  /**
   * Bytes that may wait in one socket's outgoing buffer — every message, pongs included;
   * reads pause while more waits, and a socket still over it when more must be sent is
   * closed with {@link HeraldCloseCode.SlowConsumer}, so it never slows the others.
   * Before `connection_init` the bound is {@link UNINITIALISED_BUFFERED_BYTES} (or this,
   * if smaller).
   */
  maxBufferedBytes: number;
  /** Time allowed between the upgrade and `connection_init` before a 4408 close, in ms. */
  connectionInitTimeoutMs: number;
  /** Ping interval, and how long a pong may take before the socket is terminated, in ms. */
  keepAliveMs: number;
  logger: Logger;
  /** Where slow-consumer closes are counted (the process's metrics). */
  counts: Pick<HotCounts, 'slowConsumerCloses'>;
}

/** Herald's close codes beyond graphql-ws' own (4400, 4401, 4403, 4406, 4408, 4409, 4429). */
const HeraldCloseCode = {
  /** The token was refused at `connection_init`, or expired on the open connection. */
  Forbidden: CloseCode.Forbidden,
  /** A frame was larger than `MAX_MESSAGE_BYTES` (set by `ws`, without a reason). */
  MessageTooBig: 1009,
  /** Herald failed; the reason says what, outside production. */
  InternalError: CloseCode.InternalServerError,
  /** The server is shutting down. */
  GoingAway: 1001,
  /** The client read too slowly: more than `MAX_BUFFERED_BYTES` waited to be sent to it. */
  SlowConsumer: 4413,
  /** A binary frame: graphql-transport-ws is text only (graphql-ws' own code for a bad message). */
  BadRequest: CloseCode.BadRequest,
} as const;

/** What a client can do wrong on its own connection; each is logged once per connection. */
type Misbehaviour = 'protocol-error' | 'binary-frame' | 'peer-reset' | 'write-after-close' | 'socket-error';

/** The kind of a TCP socket error: the peer's doing, all of them. */
function socketErrorKind(error: NodeJS.ErrnoException): Misbehaviour {
  switch (error.code) {
    case 'ECONNRESET':
      return 'peer-reset';
    case 'EPIPE':
    case 'ERR_STREAM_DESTROYED':
    case 'ERR_STREAM_WRITE_AFTER_END':
      return 'write-after-close';
    default:
      return 'socket-error';
  }
}

export interface WebSocketTransport {
  /**
   * Stops accepting upgrades and closes every socket with 1001, spread evenly over
   * `spreadMs` (so its clients do not all reconnect elsewhere in the same millisecond);
   * resolves once all are closed. A peer that does not answer its close frame within
   * a second is cut off.
   */
  close(spreadMs?: number): Promise<void>;
  /** Open WebSockets. */
  connections(): number;
  /** Open subscriptions over all of them. */
  subscriptions(): number;
}

export function attachWebSocketTransport(server: Server, options: WebSocketTransportOptions): WebSocketTransport {
  const { schema, verifier, logger, documents, subscriptions, fanout, maskError } = options;
  const wss = new WebSocketServer({ noServer: true, maxPayload: options.maxMessageBytes, perMessageDeflate: false });
  /** Subscriptions open over all sockets: counted for the metrics, never on the fan-out path. */
  let openSubscriptions = 0;
  let connections = 0;
  /** The logger of one connection's lines, made only when it has something to say. */
  const connectionLogger = (extra: Connection): Logger => boundLogger(logger, { connection: `ws-${extra.number}` });
  const frames = createFrameWriter(options.afterThisTurn);

  /** What every socket sink of this transport shares. */
  const shared: SocketSinkShared = {
    maxBufferedBytes: options.maxBufferedBytes,
    counts: options.counts,
    onEnded: () => (openSubscriptions -= 1),
    sendErrors: (connection, id, errors) => sendErrors(connection, id, errors),
  };
  /**
   * Opens one subscription on the core, into a sink that writes its events, rendered by
   * `plan`, straight to the socket. graphql-js calls it with the field's coerced
   * arguments, from `openSubscription`.
   */
  const openOnSocket = async (
    extra: Connection,
    id: string,
    plan: OperationPlan,
    { userName, since }: SubscriptionArguments,
    readState: boolean,
  ): Promise<AsyncIterableIterator<never>> => {
    const request = { principal: requirePrincipal(extra), userName, since, readState };
    const sink = await subscriptions.openInto(request, (hooks) => new SocketSink(extra, id, plan, shared, hooks), { endsAtExpiry: false });
    openSubscriptions += 1;
    // Counted out once it ends; one that ended before it was counted in is counted out now.
    sink.counted();
    return sink;
  };

  // Defined apart from `onUpgrade`, so the listener that stays on the socket for the
  // connection's life does not share (and keep alive) the upgrade request's scope.
  const onSocketError = (error: Error): void => logger.warn(`herald: upgrade socket error: ${error.message}`);
  const accept = (request: IncomingMessage, socket: Duplex, head: Buffer): void =>
    wss.handleUpgrade(request, socket, head, (ws) => {
      // From here on the connection logs its socket's errors, once per kind.
      socket.off('error', onSocketError);
      wss.emit('connection', ws, request);
    });

  const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', onSocketError);
    const refusal = refuseUpgrade(request, options.origins);
    if (refusal) {
      socket.end(
        `HTTP/1.1 ${refusal.status}\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(refusal.message)}\r\n\r\n${refusal.message}`,
      );
      return;
    }
    accept(request, socket, head);
  };
  server.on('upgrade', onUpgrade);

  const protocol = makeServer<Record<string, unknown>, Connection>({
    // Herald's own deadline instead (`cancelInit`): graphql-ws' timer stays in the
    // connection's scope, fired or not, for the connection's life.
    connectionInitWaitTimeout: 0,
    onConnect: (ctx) => authenticate(ctx, verifier),
    // Every error a client is sent goes through the mask: refusals, and errors in results.
    onError: (_ctx, _id, _payload, errors) => errors.map((error) => maskError(error).toJSON()),
    onNext: (_ctx, _id, _payload, _args, { data, errors, extensions }) =>
      errors && {
        ...(data === undefined ? {} : { data }),
        errors: errors.map((error) => maskError(error).toJSON()),
        ...(extensions === undefined ? {} : { extensions }),
      },
    // Queries and mutations: a subscription is opened by `subscribeHere` instead.
    onSubscribe: (ctx, _id, payload) => {
      const refusal = limitRefusal(ctx);
      if (refusal) return [refusal];
      const prepared = documents.prepare(payload.query, { keep: true });
      if (prepared.errors) return [...prepared.errors];
      // Every field graphql-ws reads or sets, from the start (`rootValue` is one it would
      // add): one added later costs the object a property array.
      const args: ExecutionArgs = {
        schema,
        document: prepared.document,
        contextValue: { principal: ctx.extra.principal } satisfies HeraldContext,
        rootValue: undefined,
        operationName: payload.operationName,
        variableValues: payload.variables,
      };
      return args;
    },
  });

  /** The `LIMIT_EXCEEDED` error when the connection's subscriptions (this one, already reserved, included) are too many. */
  const limitRefusal = (ctx: ProtocolContext): GraphQLError | undefined =>
    Object.keys(ctx.subscriptions).length > options.maxSubscriptionsPerConnection
      ? graphqlError('LIMIT_EXCEEDED', `this connection already holds ${options.maxSubscriptionsPerConnection} subscriptions (MAX_SUBSCRIPTIONS_PER_CONNECTION)`)
      : undefined;

  /** Sends graphql-ws' `error` message for `id`, every error through the mask. */
  const sendErrors = (connection: Connection, id: string, errors: readonly GraphQLError[]): void =>
    connection.send(stringifyMessage({ id, type: MessageType.Error, payload: errors.map((error) => maskError(error).toJSON()) }));

  /**
   * A `subscribe` message of a subscription, on an acknowledged connection, is opened
   * here rather than by graphql-ws: graphql-ws holds each subscription in an async
   * function suspended in a `for await` — its message, its execution arguments, three
   * callbacks and a promise chain, about 2 KB a subscription for its whole life (issue
   * 17). Everything else (`connection_init`, pings, queries and mutations, `complete`, a
   * malformed or duplicate message) stays graphql-ws'. The subscription is registered in
   * graphql-ws' own `ctx.subscriptions`, as graphql-ws would: its `complete` and its
   * close return the sink. Returns false for a message graphql-ws must handle.
   */
  const subscribeHere = (connection: Connection, data: string): boolean => {
    const ctx = connection.context;
    if (ctx === undefined || !ctx.acknowledged) return false;
    let message: Message;
    try {
      message = parseMessage(data);
    } catch {
      return false; // graphql-ws closes with 4400
    }
    if (message.type !== MessageType.Subscribe || message.id in ctx.subscriptions) return false;
    const { id, payload } = message;
    const prepared = documents.prepare(payload.query, { keep: true });
    if (prepared.errors || getOperationAST(prepared.document, payload.operationName)?.operation !== 'subscription') return false;
    // Reserved, as graphql-ws does: a `complete` before it is open cancels it.
    ctx.subscriptions[id] = null;
    openSubscription(connection, ctx, id, payload, prepared.document).catch((error: unknown) => {
      delete ctx.subscriptions[id];
      internalError(connection, error);
    });
    return true;
  };

  const openSubscription = async (connection: Connection, ctx: ProtocolContext, id: string, payload: SubscribePayload, document: DocumentNode): Promise<void> => {
    const refusal = limitRefusal(ctx);
    if (refusal) {
      delete ctx.subscriptions[id];
      return sendErrors(connection, id, [refusal]);
    }
    const operationName = payload.operationName ?? undefined;
    const variables = payload.variables ?? undefined;
    // The fan-out path: rendered once per event and operation, written straight to the socket.
    const plan = fanout.plan({ document, query: payload.query, operationName, variables });
    const result = await createSourceEventStream({
      schema,
      document,
      contextValue: { principal: connection.principal } satisfies HeraldContext,
      operationName,
      variableValues: variables,
      subscribeFieldResolver: (_root: unknown, fieldArgs: SubscriptionArguments, _context: unknown, info: GraphQLResolveInfo) =>
        openOnSocket(connection, id, plan, fieldArgs, yieldsReadState(info.fieldName)),
    });
    if (result instanceof SocketSink) {
      // The client completed it, or left, while it was opening.
      if (ctx.subscriptions[id] !== null) return void (await result.return());
      ctx.subscriptions[id] = result;
      result.registered(ctx);
      return;
    }
    // Refused (a wrong user, a bad cursor, Redis unavailable): as graphql-ws answers a
    // source stream that is an error, a `next` with the errors, then `complete`.
    if (!(id in ctx.subscriptions)) return;
    delete ctx.subscriptions[id];
    const errors = 'errors' in result ? (result.errors ?? []) : [];
    connection.send(stringifyMessage({ id, type: MessageType.Next, payload: { errors: errors.map((error) => maskError(error).toJSON()) } }));
    connection.send(stringifyMessage({ id, type: MessageType.Complete }));
  };

  /** Logs one kind of a client's misbehaviour, the first time only on each connection. */
  const misbehaved = (extra: Connection, kind: Misbehaviour, message: string): void => {
    const logged = (extra.logged ??= new Set());
    if (logged.has(kind)) return;
    logged.add(kind);
    connectionLogger(extra).warn(`herald: websocket client ${kind}: ${message}`);
  };

  // Logged (by the mask) and closed for once: what follows on the same connection is its echo.
  const internalError = (extra: Connection, error: unknown): void => {
    if (extra.failed) return;
    extra.failed = true;
    extra.socket.close(HeraldCloseCode.InternalError, closeReason(maskError(error).message));
  };

  const slowConsumer = (socket: WebSocket, bound: SendBound): void => {
    options.counts.slowConsumerCloses += 1;
    const setting = bound.limit === options.maxBufferedBytes ? 'MAX_BUFFERED_BYTES' : 'before connection_init';
    socket.close(HeraldCloseCode.SlowConsumer, `slow consumer: more than ${bound.limit} bytes waiting (${setting})`);
  };
  const connectionShared: ConnectionShared = { slowConsumer };

  // One timer for every socket: a socket that has not answered the previous ping by the
  // next tick is terminated, so a vanished peer is dropped within two intervals. One
  // still over its send bound since the last tick is closed as a slow consumer (its
  // reads are paused, so its answer could not be read: the next tick drops it).
  const alive = new WeakSet<WebSocket>();
  /** Each connection, by its WebSocket and by the TCP socket under it: the shared listeners find it there. */
  const connectionOf = new WeakMap<object, Connection>();
  const heartbeat = setInterval(() => {
    for (const socket of wss.clients) {
      if (!alive.has(socket)) {
        socket.terminate();
        continue;
      }
      alive.delete(socket);
      const bound = connectionOf.get(socket)?.bound;
      if (bound?.over) {
        slowConsumer(socket, bound);
        continue;
      }
      socket.ping();
      bound?.wrote();
    }
  }, options.keepAliveMs);
  heartbeat.unref();

  // The listeners on every socket, shared by all: a listener per connection cost a
  // function each, for the connection's life. Each is called with the socket
  // it fires on as `this`.
  const listeners = {
    pong(this: WebSocket): void {
      alive.add(this);
    },
    /** `ws` has answered it with a pong of its own: one more write under the bound. */
    ping(this: WebSocket): void {
      connectionOf.get(this)?.bound.wrote();
    },
    error(this: WebSocket, error: Error): void {
      // `ws` has already closed the socket for protocol errors: 1009 for a frame over
      // MAX_MESSAGE_BYTES, 1002 for a malformed frame.
      const connection = connectionOf.get(this);
      if (connection) misbehaved(connection, 'protocol-error', `closed: ${error.message}`);
    },
    /** A reset by the peer, or a write racing its close: `ws` destroys the socket, and nothing is Herald's fault. */
    rawError(this: Duplex, error: NodeJS.ErrnoException): void {
      const connection = connectionOf.get(this);
      if (connection) misbehaved(connection, socketErrorKind(error), error.message);
    },
    message(this: WebSocket, data: RawData, isBinary: boolean): void {
      // The rest of a chunk read before the socket started closing: not worth parsing.
      if (this.readyState !== this.OPEN) return;
      const connection = connectionOf.get(this);
      if (connection?.receive === undefined) return;
      if (isBinary) {
        misbehaved(connection, 'binary-frame', 'closed with 4400');
        this.close(HeraldCloseCode.BadRequest, 'binary frames are not accepted: graphql-transport-ws sends text frames only');
        return;
      }
      const text = String(data);
      if (subscribeHere(connection, text)) return;
      connection.receive(text).catch((error: unknown) => internalError(connection, error));
    },
    close(this: WebSocket, code: number, reason: Buffer): void {
      alive.delete(this);
      const connection = connectionOf.get(this);
      if (connection === undefined) return;
      connection.cancelInit?.();
      connection.cancelExpiry?.();
      connectionLogger(connection).debug?.(`herald: websocket connection closed with ${code}`);
      connection.closed?.(code, String(reason)).catch((error: unknown) => connectionLogger(connection).error(`herald: websocket clean-up failed: ${String(error)}`));
    },
  };
  const onInitTimeout = (socket: WebSocket): void => socket.close(CloseCode.ConnectionInitialisationTimeout, 'Connection initialisation timeout');

  wss.on('connection', (socket: WebSocket, request: IncomingMessage) => {
    // The one `ws` internal Herald touches, here only: `WebSocket#_socket`, the net.Socket
    // of ws 8.23.0 (pinned exactly in package.json). Fan-out frames are written to it
    // directly, one write per socket and turn instead of ws' sender queue per message.
    const raw = (socket as unknown as { _socket: Duplex })._socket;
    const connection = new Connection(++connections, socket, raw, frames, connectionShared, request.headers.authorization, {
      beforeInit: UNINITIALISED_BUFFERED_BYTES,
      afterInit: options.maxBufferedBytes,
    });
    // graphql-ws' rule: the deadline is met by receiving `connection_init`, accepted or not.
    connection.cancelInit = runAt(Date.now() + options.connectionInitTimeoutMs, onInitTimeout.bind(undefined, socket));
    alive.add(socket);
    connectionOf.set(socket, connection);
    connectionOf.set(raw, connection);
    socket.on('pong', listeners.pong);
    socket.on('ping', listeners.ping);
    socket.on('error', listeners.error);
    raw.on('error', listeners.rawError);
    socket.on('message', listeners.message);
    // `on`, not `once`: the socket closes once, and `once` costs a wrapper per connection.
    socket.on('close', listeners.close);
    connection.closed = protocol.opened(connection, connection);
    connectionLogger(connection).debug?.('herald: websocket connection opened');
  });

  return {
    async close(spreadMs = 0) {
      server.off('upgrade', onUpgrade);
      clearInterval(heartbeat);
      // With `noServer`, this resolves once the last client has closed.
      const closed = new Promise<void>((resolve) => wss.close(() => resolve()));
      await closeSpread([...wss.clients], spreadMs, (socket) => socket.close(HeraldCloseCode.GoingAway, 'server shutting down'));
      // A peer that never answers the close frame is cut off rather than waited for.
      const cutOff = setTimeout(() => wss.clients.forEach((socket) => socket.terminate()), 1000);
      await closed;
      clearTimeout(cutOff);
    },
    connections: () => wss.clients.size,
    subscriptions: () => openSubscriptions,
  };
}

/** graphql-ws' context of one connection. */
type ProtocolContext = Context<Record<string, unknown>, Connection>;

/** What every connection of one transport shares. */
interface ConnectionShared {
  /** Closes `socket` with 4413, counted. */
  readonly slowConsumer: (socket: WebSocket, bound: SendBound) => void;
}

/**
 * One WebSocket connection: graphql-ws' socket (`protocol`, `send`, `close`,
 * `onMessage`), its `extra`, and the outbox's owner, in one object. A connection lives
 * for hours: closures per connection cost a function each and kept their scope alive
 * (idle memory per connection).
 */
class Connection implements GraphQLWebSocket, OutboxOwner {
  [key: PropertyKey]: unknown;
  /** This process's number for the connection: `connection: "ws-<n>"` on its log lines. */
  readonly number: number;
  readonly socket: WebSocket;
  /** The TCP socket under `ws`. */
  readonly raw: Duplex;
  /** The fan-out frames of the current turn, written together when it ends. */
  readonly outbox: Outbox;
  /** The bound on every byte waiting to be sent on the socket. */
  readonly bound: SendBound;
  readonly #shared: ConnectionShared;
  /** The kinds of client misbehaviour already logged for this connection. */
  logged: Set<Misbehaviour> | undefined;
  /** Set once an internal error has been logged and the socket closed for it. */
  failed = false;
  /**
   * The upgrade request's `Authorization` header, until `connection_init`. Only the
   * header is kept, not the request: a connection lives for hours, a request object is
   * kilobytes.
   */
  upgradeAuthorization: string | undefined;
  principal: Principal | undefined;
  /** Disarms the token-expiry close; called when the socket closes. */
  cancelExpiry: Cancel | undefined;
  /** Disarms the 4408 close of a socket without `connection_init`; called when it arrives, or the socket closes. */
  cancelInit: Cancel | undefined;
  /** graphql-ws' context of the connection, from `connection_init` on. */
  context: ProtocolContext | undefined;
  /** graphql-ws' handler of each message. */
  receive: ((data: string) => Promise<void>) | undefined;
  /** graphql-ws' clean-up, called when the socket closes. */
  closed: ((code: number, reason: string) => Promise<void>) | undefined;

  constructor(number: number, socket: WebSocket, raw: Duplex, frames: FrameWriter, shared: ConnectionShared, upgradeAuthorization: string | undefined, limits: SendBoundLimits) {
    this.number = number;
    this.socket = socket;
    this.raw = raw;
    this.#shared = shared;
    this.upgradeAuthorization = upgradeAuthorization;
    this.bound = new SendBound(socket, raw, limits);
    this.outbox = frames.outbox(raw, this);
  }

  get protocol(): string {
    return this.socket.protocol;
  }

  isOpen(): boolean {
    return this.socket.readyState === this.socket.OPEN;
  }

  wrote(): void {
    this.bound.wrote();
  }

  /**
   * Not waiting for the write: a client that does not read would hold a promise, and
   * graphql-ws its message, per answer. The bound limits what waits instead.
   */
  send(data: string): void {
    const { socket, bound } = this;
    if (socket.readyState !== socket.OPEN) return;
    // A `complete` or `error` must not overtake the `next` frames held this turn.
    this.outbox.flush();
    if (bound.over) return this.#shared.slowConsumer(socket, bound);
    socket.send(data);
    bound.wrote();
  }

  close(code: number, reason: string): void {
    this.socket.close(code, reason);
  }

  onMessage(receive: (data: string) => Promise<void>): void {
    this.receive = receive;
  }
}

/** What every socket sink of one transport shares. */
interface SocketSinkShared {
  readonly maxBufferedBytes: number;
  readonly counts: Pick<HotCounts, 'slowConsumerCloses'>;
  /** Called once when a counted sink ends. */
  readonly onEnded: () => void;
  /** Sends the `error` message for a subscription that failed. */
  readonly sendErrors: (connection: Connection, id: string, errors: readonly GraphQLError[]) => void;
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({ value: undefined, done: true });

/**
 * The sink of one subscription on the fan-out path: each item is rendered by the
 * operation's plan (shared by every observer with the same operation) and sent with
 * this subscription's id spliced in. No queue, no promise per delivery.
 *
 * It is also what graphql-ws holds for the subscription: an iterator that yields
 * nothing, ends when the sink ends (rejecting with the sink's error, which the mask
 * turns into its code), and ends the sink when graphql-ws returns it (a `complete` from
 * the client, or the socket closed). One object per subscription, where a sink and an
 * iterator made of closures cost a dozen functions and their contexts.
 */
class SocketSink implements Sink, AsyncIterableIterator<never> {
  readonly #connection: Connection;
  readonly #id: string;
  /** graphql-ws' record of the connection's subscriptions, once this one is in it. */
  #registry: ProtocolContext | undefined;
  /** `{"id":<id>,"type":"next","payload":`: the frame up to the rendered payload. */
  readonly #head: Buffer;
  readonly #plan: OperationPlan;
  readonly #shared: SocketSinkShared;
  readonly #hooks: SinkHooks;
  #ended = false;
  #counted = false;
  #error: Error | undefined;
  /** graphql-ws' pending `next()`, settled when the sink ends. */
  #resolveNext: ((result: IteratorReturnResult<undefined>) => void) | undefined;
  #rejectNext: ((error: Error) => void) | undefined;

  constructor(connection: Connection, id: string, plan: OperationPlan, shared: SocketSinkShared, hooks: SinkHooks) {
    this.#connection = connection;
    this.#id = id;
    this.#head = Buffer.from(`{"id":${JSON.stringify(id)},"type":"next","payload":`);
    this.#plan = plan;
    this.#shared = shared;
    this.#hooks = hooks;
  }

  /** The subscription is counted as open: {@link SocketSinkShared.onEnded} is due when it ends. */
  counted(): void {
    this.#counted = true;
    if (this.#ended) this.#shared.onEnded();
  }

  /**
   * It is in graphql-ws' `ctx.subscriptions`: when it ends on its own, the client is told
   * (`error`, or `complete`), and it leaves them.
   */
  registered(registry: ProtocolContext): void {
    this.#registry = registry;
    if (this.#ended) this.#leave();
  }

  deliver(item: SubscriptionItem): boolean {
    const { socket, outbox } = this.#connection;
    if (this.#ended || socket.readyState !== socket.OPEN) return false;
    // Judged on the turn's first frame: what waits then is what the client has not
    // read from earlier turns.
    const { maxBufferedBytes } = this.#shared;
    if (!outbox.holding && socket.bufferedAmount > maxBufferedBytes) {
      this.#shared.counts.slowConsumerCloses += 1;
      socket.close(HeraldCloseCode.SlowConsumer, `slow consumer: more than ${maxBufferedBytes} bytes waiting (MAX_BUFFERED_BYTES)`);
      void this.#end();
      return false;
    }
    outbox.add(textFrame(this.#head, this.#plan.render(item)));
    return true;
  }

  preload(items: readonly SubscriptionItem[]): void {
    if (this.#ended) return;
    for (const item of items) this.#connection.outbox.add(textFrame(this.#head, this.#plan.render(item)));
  }

  async room(): Promise<void> {
    // What was added this turn leaves when the turn ends; then the client must read it.
    await new Promise((resolve) => setImmediate(resolve));
    const { socket, raw } = this.#connection;
    while (!this.#ended && socket.readyState === socket.OPEN && socket.bufferedAmount > this.#shared.maxBufferedBytes / 2) {
      await drainedOrClosed(raw);
    }
  }

  fail(error: Error): void {
    void this.#end(error);
  }

  next(): Promise<IteratorResult<never>> {
    if (this.#ended) return this.#error ? Promise.reject(this.#error) : Promise.resolve(DONE);
    return new Promise((resolve, reject) => {
      this.#resolveNext = resolve;
      this.#rejectNext = reject;
    });
  }

  async return(): Promise<IteratorReturnResult<undefined>> {
    await this.#end();
    return DONE;
  }

  async throw(error: unknown): Promise<never> {
    await this.#end();
    throw error;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async #end(error?: Error): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = error;
    if (this.#counted) this.#shared.onEnded();
    const [resolve, reject] = [this.#resolveNext, this.#rejectNext];
    this.#resolveNext = this.#rejectNext = undefined;
    if (error) reject?.(error);
    else resolve?.(DONE);
    this.#leave();
    await this.#hooks.onEnd();
  }

  /** As graphql-ws ends a subscription whose stream ended: unless the client completed it (or left), an `error` or a `complete`. */
  #leave(): void {
    const registry = this.#registry;
    if (registry === undefined || registry.subscriptions[this.#id] !== this) return;
    delete registry.subscriptions[this.#id];
    const error = this.#error;
    if (error) this.#shared.sendErrors(this.#connection, this.#id, [new GraphQLError(error.message, { originalError: error })]);
    else this.#connection.send(stringifyMessage({ id: this.#id, type: MessageType.Complete }));
  }
}

/** Resolves when `raw` has written everything it buffered, or closed. */
function drainedOrClosed(raw: Duplex): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      raw.off('drain', done);
      raw.off('close', done);
      resolve();
    };
    raw.on('drain', done);
    raw.on('close', done);
  });
}

function refuseUpgrade(request: IncomingMessage, origins: OriginPolicy): { status: string; message: string } | undefined {
  const path = (request.url ?? '/').split('?')[0];
  if (path !== GRAPHQL_PATH) return { status: '404 Not Found', message: `WebSocket endpoint is ${GRAPHQL_PATH}` };
  const origin = request.headers.origin;
  if (!origins.allows(origin, request.headers.host)) {
    return { status: '403 Forbidden', message: originRefusal(origin) };
  }
  const offered = (request.headers['sec-websocket-protocol'] ?? '').split(',').map((protocol) => protocol.trim());
  if (!offered.includes(GRAPHQL_TRANSPORT_WS_PROTOCOL)) {
    return {
      status: '400 Bad Request',
      message: `WebSocket subprotocol must be ${GRAPHQL_TRANSPORT_WS_PROTOCOL}`,
    };
  }
  return undefined;
}

/** `connection_init`: verifies the token, remembers the principal, arms the expiry close. */
function authenticate(ctx: ProtocolContext, verifier: TokenVerifier): boolean {
  const { socket } = ctx.extra;
  ctx.extra.context = ctx;
  ctx.extra.cancelInit?.();
  ctx.extra.cancelInit = undefined;
  const params = ctx.connectionParams ?? {};
  const header = params['authorization'] ?? params['Authorization'] ?? ctx.extra.upgradeAuthorization;
  // Neither is needed again once the principal is known.
  ctx.extra.upgradeAuthorization = undefined;
  (ctx as { connectionParams?: unknown }).connectionParams = undefined;
  let principal: Principal;
  try {
    principal = verifier.verify(bearerToken(header));
  } catch (error) {
    const reason = error instanceof AuthenticationError ? error.message : 'token rejected';
    socket.close(HeraldCloseCode.Forbidden, closeReason(`Forbidden: ${reason}`));
    return false;
  }
  ctx.extra.principal = principal;
  ctx.extra.bound.initialised();
  ctx.extra.cancelExpiry = runAt(principal.expiresAt, () => socket.close(HeraldCloseCode.Forbidden, 'Forbidden: token expired'));
  return true;
}

/** A close reason may hold at most 123 bytes. */
function closeReason(reason: string): string {
  if (Buffer.byteLength(reason) <= 123) return reason;
  let cut = reason.slice(0, 120);
  while (Buffer.byteLength(cut) > 120) cut = cut.slice(0, -1);
  return `${cut}…`;
}

/** How often a spread close wakes to close the next share of sockets, in ms. */
const SPREAD_TICK_MS = 10;

/**
 * Calls `close` on each of `sockets`, evenly spread over `spreadMs`: every
 * {@link SPREAD_TICK_MS} the share of sockets due by then. Resolves after the last.
 */
function closeSpread(sockets: readonly WebSocket[], spreadMs: number, close: (socket: WebSocket) => void): Promise<void> {
  const started = performance.now();
  let next = 0;
  return new Promise((resolve) => {
    const tick = (): void => {
      const due = spreadMs <= 0 ? sockets.length : Math.min(sockets.length, Math.ceil((sockets.length * (performance.now() - started)) / spreadMs));
      for (; next < due; next++) close(sockets[next] as WebSocket);
      if (next >= sockets.length) return resolve();
      setTimeout(tick, SPREAD_TICK_MS);
    };
    tick();
  });
}
