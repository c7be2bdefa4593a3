/**
 * GraphQL over WebSocket (graphql-transport-ws) for the subscribe server: the adapter,
 * and the only module that imports `ws`. It owns the WebSocket server and the upgrade
 * (path, Origin, subprotocol), one heartbeat for every socket, and the spread close at
 * shutdown; each socket becomes a {@link Connection}, whose messages the
 * {@link Protocol} answers. Nothing it does throws into the socket library: a bad frame,
 * message, query or token is answered with an error or a close code ({@link CloseCode}).
 * A client's misbehaviour is logged once per connection and kind, however often it
 * repeats.
 *
 * Herald owns the graphql-transport-ws state machine (`protocol.ts`) rather than running
 * graphql-ws' `makeServer`. Decided once, for these reasons: the protocol is five
 * client messages and a handful of close codes, and Herald already owned all that
 * matters in it — the `connection_init` deadline and authentication, the keepalive, the
 * send bound, and every subscription (whose sink writes straight to the socket). Run
 * under `makeServer`, that meant reserving entries in graphql-ws' internal
 * `ctx.subscriptions` the way it does, emulating its "`next` with errors, then
 * `complete`", parsing every message twice (once to find a subscription, once in
 * graphql-ws), and holding its closures and context per connection: a patch release of
 * graphql-ws could break any of them. graphql-ws stays the protocol's reference: its
 * public `parseMessage`, `stringifyMessage`, `MessageType` and close codes are used as
 * they are, its reasons are sent word for word, and its client is what the tests speak.
 * Nothing here reaches into another package's private fields: the TCP socket the
 * fan-out frames are written to is the one the upgrade handed over, not `ws`' own
 * `_socket`.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { GRAPHQL_TRANSPORT_WS_PROTOCOL } from 'graphql-ws';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { bound as boundLogger, type Logger } from '../../common/logger.js';
import type { HotCounts } from '../../common/metrics.js';
import { runAt, type AfterThisTurn } from '../../common/timers.js';
import type { Subscriptions } from '../../core/subscriptions.js';
import type { OperationPipeline } from '../../graphql/operation.js';
import { GRAPHQL_PATH, originRefusal, type OriginPolicy } from '../http/edge.js';
import { CloseCode } from './close-codes.js';
import { Connection, type ConnectionShared, type Misbehaviour } from './connection.js';
import { createFrameWriter } from './frames.js';
import { createProtocol, type Protocol } from './protocol.js';
import { UNINITIALISED_BUFFERED_BYTES, type SendBound } from './send-bound.js';

export interface WebSocketTransportOptions {
  /** Prepares every operation and opens every subscription (`graphql/operation.ts`). */
  pipeline: OperationPipeline;
  /** Where each subscription is opened. */
  subscriptions: Subscriptions;
  /** When the frames held this turn are written: the fan-out plans' end of turn too. */
  afterThisTurn: AfterThisTurn;
  origins: OriginPolicy;
  /** Largest frame accepted, in bytes; a bigger one closes the socket with {@link CloseCode.MessageTooBig}. */
  maxMessageBytes: number;
  /** Subscriptions one connection may hold at once. */
  maxSubscriptionsPerConnection: number;
  /**
   * Bytes that may wait in one socket's outgoing buffer — every message, pongs included;
   * reads pause while more waits, and a socket still over it when more must be sent is
   * closed with {@link CloseCode.SlowConsumer}, so it never slows the others.
   * Before `connection_init` the bound is {@link UNINITIALISED_BUFFERED_BYTES} (or this,
   * if smaller).
   */
  maxBufferedBytes: number;
  /** Time allowed between the upgrade and `connection_init` before a {@link CloseCode.ConnectionInitialisationTimeout} close, in ms. */
  connectionInitTimeoutMs: number;
  /** Ping interval, and how long a pong may take before the socket is terminated, in ms. */
  keepAliveMs: number;
  logger: Logger;
  /** Where slow-consumer closes are counted (the process's metrics). */
  counts: Pick<HotCounts, 'slowConsumerCloses' | 'tokenRefreshes' | 'tokenRefreshRefusals'>;
}

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
   * Stops accepting upgrades and closes every socket with {@link CloseCode.GoingAway}, spread evenly over
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
  const { logger } = options;
  const wss = new WebSocketServer({ noServer: true, maxPayload: options.maxMessageBytes, perMessageDeflate: false });
  /** Subscriptions open over all sockets: counted for the metrics, never on the fan-out path. */
  let openSubscriptions = 0;
  let connections = 0;
  /** The logger of one connection's lines, made only when it has something to say. */
  const connectionLogger = (connection: Connection): Logger => boundLogger(logger, { connection: `ws-${connection.number}` });
  const frames = createFrameWriter(options.afterThisTurn);
  const protocol: Protocol = createProtocol({
    pipeline: options.pipeline,
    subscriptions: options.subscriptions,
    maxOperations: options.maxSubscriptionsPerConnection,
    sinks: { maxBufferedBytes: options.maxBufferedBytes, counts: options.counts, onEnded: () => (openSubscriptions -= 1) },
    onOpened: () => (openSubscriptions += 1),
  });

  // Defined apart from `onUpgrade`, so the listener that stays on the socket for the
  // connection's life does not share (and keep alive) the upgrade request's scope.
  const onSocketError = (error: Error): void => logger.warn(`herald: upgrade socket error: ${error.message}`);
  const accept = (request: IncomingMessage, socket: Duplex, head: Buffer): void =>
    wss.handleUpgrade(request, socket, head, (ws) => {
      // From here on the connection logs its socket's errors, once per kind.
      socket.off('error', onSocketError);
      opened(ws, socket, request.headers.authorization);
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

  /** Logs one kind of a client's misbehaviour, the first time only on each connection. */
  const misbehaved = (connection: Connection, kind: Misbehaviour, message: string): void => {
    const logged = (connection.logged ??= new Set());
    if (logged.has(kind)) return;
    logged.add(kind);
    connectionLogger(connection).warn(`herald: websocket client ${kind}: ${message}`);
  };

  const slowConsumer = (socket: WebSocket, bound: SendBound): void => {
    // A socket closed already (by a delivery's 4413, say) is still over its bound until
    // its peer reads: one close, counted once.
    if (socket.readyState !== socket.OPEN) return;
    options.counts.slowConsumerCloses += 1;
    const setting = bound.limit === options.maxBufferedBytes ? 'MAX_BUFFERED_BYTES' : 'before connection_init';
    socket.close(CloseCode.SlowConsumer, `slow consumer: more than ${bound.limit} bytes waiting (${setting})`);
  };
  const connectionShared: ConnectionShared = {
    slowConsumer,
    maskError: options.pipeline.maskError,
    onTokenRefreshed(connection) {
      options.counts.tokenRefreshes += 1;
      const expiresAt = connection.principal === undefined ? 'never' : new Date(connection.principal.expiresAt).toISOString();
      connectionLogger(connection).debug?.(`herald: websocket token refreshed, now expires at ${expiresAt}`);
    },
    onTokenRefreshRefused(connection, failure) {
      options.counts.tokenRefreshRefusals += 1;
      connectionLogger(connection).info(`herald: websocket token refresh refused (${failure.code}): ${failure.message}`);
    },
  };

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
  // function each, for the connection's life. Each is called with the socket it fires
  // on as `this`.
  const listeners = {
    pong(this: WebSocket): void {
      alive.add(this);
    },
    /** `ws` has answered it with a pong of its own: one more write under the bound. */
    ping(this: WebSocket): void {
      connectionOf.get(this)?.bound.wrote();
    },
    error(this: WebSocket, error: Error): void {
      // `ws` has already closed the socket for protocol errors: {@link CloseCode.MessageTooBig} for a frame over
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
      if (connection === undefined) return;
      if (isBinary) {
        misbehaved(connection, 'binary-frame', `closed with ${CloseCode.BadRequest}`);
        connection.close(CloseCode.BadRequest, 'binary frames are not accepted: graphql-transport-ws sends text frames only');
        return;
      }
      protocol.receive(connection, String(data));
    },
    close(this: WebSocket, code: number): void {
      alive.delete(this);
      const connection = connectionOf.get(this);
      if (connection === undefined) return;
      connectionLogger(connection).debug?.(`herald: websocket connection closed with ${code}`);
      protocol.closed(connection).catch((error: unknown) => connectionLogger(connection).error(`herald: websocket clean-up failed: ${String(error)}`));
    },
  };
  const onInitTimeout = (connection: Connection): void => connection.close(CloseCode.ConnectionInitialisationTimeout, 'Connection initialisation timeout');

  /**
   * A socket `ws` has upgraded: `raw` is the TCP socket the upgrade handed over, which
   * `ws` keeps under it and the fan-out frames are written to.
   */
  function opened(socket: WebSocket, raw: Duplex, authorization: string | undefined): void {
    const connection = new Connection(++connections, socket, raw, frames, connectionShared, authorization, {
      beforeInit: UNINITIALISED_BUFFERED_BYTES,
      afterInit: options.maxBufferedBytes,
    });
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
    // `ws` picks the first subprotocol offered; the upgrade was refused unless this one was among them.
    if (socket.protocol !== GRAPHQL_TRANSPORT_WS_PROTOCOL) return connection.close(CloseCode.SubprotocolNotAcceptable, 'Subprotocol not acceptable');
    connection.cancelInit = runAt(Date.now() + options.connectionInitTimeoutMs, onInitTimeout.bind(undefined, connection));
    connectionLogger(connection).debug?.('herald: websocket connection opened');
  }

  return {
    async close(spreadMs = 0) {
      server.off('upgrade', onUpgrade);
      clearInterval(heartbeat);
      // With `noServer`, this resolves once the last client has closed.
      const closed = new Promise<void>((resolve) => wss.close(() => resolve()));
      await closeSpread([...wss.clients], spreadMs, (socket) => socket.close(CloseCode.GoingAway, 'server shutting down'));
      // A peer that never answers the close frame is cut off rather than waited for.
      const cutOff = setTimeout(() => wss.clients.forEach((socket) => socket.terminate()), 1000);
      await closed;
      clearTimeout(cutOff);
    },
    connections: () => wss.clients.size,
    subscriptions: () => openSubscriptions,
  };
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
