/**
 * Listening and stopping for Herald's HTTP servers, so that a stop resets no connection
 * the server accepted (issue 22: 80 of 300 requests arriving at a SIGTERM got
 * ECONNRESET).
 *
 * A stop goes in three steps:
 * 1. It keeps accepting until a turn of the event loop accepts nothing (for at most half
 *    the drain time), then closes the listening socket. Connections the kernel completed
 *    while the process was busy wait in the listen backlog — libuv accepts one per turn
 *    of the loop (libuv#3696), so a busy server can hold hundreds there — and closing the
 *    socket would make the kernel reset every one of them, requests written and all. Once
 *    it is closed, a new connection is refused (ECONNREFUSED): nothing was sent.
 * 2. Every request from then on is answered with `Connection: close`; a kept-alive
 *    connection idle after a response is closed; a connection accepted whose request has
 *    not arrived yet is left to send it (Node's `server.close()` would destroy it with its
 *    request unread, a reset after acceptance).
 * 3. What is still open after the drain time is cut off.
 *
 * What remains is the kernel's: a connection completed in the last turn, between the
 * event loop's last look at the backlog and the close, is reset by the kernel, unread
 * (`test/e2e/abuse/drain-singles.test.ts` counts them).
 */
import { Server as NetServer, type AddressInfo, type Socket } from 'node:net';
import type { Server, ServerResponse } from 'node:http';

/** How often a drain looks for connections that have finished their request, in ms. */
const DRAIN_POLL_MS = 20;

/** One connection of a server, as a drain sees it. */
interface Connection {
  /** Requests begun on it. */
  requests: number;
  /** Their responses not yet finished. */
  readonly responding: Set<ServerResponse>;
}

/** Each listening server's connections (upgraded ones included, which never begin a request here). */
const connectionsOf = new WeakMap<Server, Map<Socket, Connection>>();
/** Servers that are stopping: each response closes its connection. */
const stopping = new WeakSet<Server>();

/** Listens on `port` (0 for any free one) and resolves with the port it got. */
export function listen(server: Server, port: number, host?: string): Promise<number> {
  track(server);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function track(server: Server): void {
  if (connectionsOf.has(server)) return;
  const connections = new Map<Socket, Connection>();
  connectionsOf.set(server, connections);
  server.on('connection', (socket: Socket) => {
    connections.set(socket, { requests: 0, responding: new Set() });
    socket.once('close', () => connections.delete(socket));
  });
  // Before the server's own handler, so a stopping server's answer carries the header.
  server.prependListener('request', (request, response) => {
    const connection = connections.get(request.socket);
    if (connection) {
      connection.requests++;
      connection.responding.add(response);
      response.once('close', () => connection.responding.delete(response));
    }
    if (stopping.has(server)) response.setHeader('Connection', 'close');
  });
}

/**
 * Stops accepting connections once the backlog is accepted (within half of `drainMs`),
 * lets every request in flight finish — closing each kept-alive connection once it is
 * idle, and answering with `Connection: close` — and resolves when all are closed. What
 * is still open after `drainMs` is cut off.
 */
export async function shutdown(server: Server, drainMs = 0): Promise<void> {
  if (!server.listening) return;
  const deadline = Date.now() + drainMs;
  stopping.add(server);
  const connections = connectionsOf.get(server);
  if (connections === undefined) throw new Error('shutdown() stops a server started by listen()');
  for (const { responding } of connections.values()) {
    for (const response of responding) if (!response.headersSent) response.setHeader('Connection', 'close');
  }
  await acceptBacklog(server, drainMs / 2);
  // net's close, not http's: http's would destroy every connection with no request in
  // progress, one accepted a moment ago with its request still unread among them.
  const closed = new Promise<void>((resolve) => NetServer.prototype.close.call(server, () => resolve()));
  for (;;) {
    for (const [socket, { requests, responding }] of connections) {
      if (requests > 0 && responding.size === 0) socket.destroy();
    }
    const open = await new Promise<number>((resolve) => server.getConnections((error, count) => resolve(error ? 0 : count)));
    if (open === 0 || Date.now() >= deadline) break;
    await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
  }
  for (const socket of connections.keys()) socket.destroy();
  server.closeAllConnections();
  await closed;
  // Now http's close, which has nothing left to close, for the timer that watched the
  // connections' header and request timeouts.
  server.close();
}

/**
 * Resolves once a whole turn of the event loop — a poll for I/O included — has accepted
 * no connection: the backlog was empty at that poll (the listening socket is polled
 * level-triggered). Or after `maxMs`, if connections keep coming.
 */
async function acceptBacklog(server: Server, maxMs: number): Promise<void> {
  const until = Date.now() + maxMs;
  let accepted = true;
  const onConnection = (): void => {
    accepted = true;
  };
  server.on('connection', onConnection);
  try {
    while (accepted && Date.now() < until) {
      accepted = false;
      // An immediate set from the check phase runs in the next turn, after its poll.
      await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setImmediate(resolve));
    }
  } finally {
    server.off('connection', onConnection);
  }
}
