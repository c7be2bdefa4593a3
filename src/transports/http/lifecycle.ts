/**
 * Listening and stopping for Herald's HTTP servers, so that a stop resets no connection
 * made before it (without it, 80 of 300 requests arriving at a SIGTERM got ECONNRESET,
 * none of them stored).
 *
 * A stop goes in three steps:
 * 1. It keeps accepting until a turn of the event loop accepts nothing (for at most half
 *    the drain time), then closes the listening socket. Connections the kernel completed
 *    while the process was busy wait in the listen backlog — libuv accepts one per turn
 *    of the loop (libuv#3696), so a busy server can hold hundreds there — and closing the
 *    socket made the kernel reset every one of them, requests written and all. Once it is
 *    closed, a new connection is refused (ECONNREFUSED): nothing was sent.
 * 2. Every response from then on says `Connection: close`; a kept-alive connection idle
 *    between requests is closed (Node's `closeIdleConnections`: a connection accepted
 *    whose request has not arrived yet is not idle, and is left to send it).
 * 3. What is still open after the drain time is cut off.
 *
 * What remains is the kernel's: a connection completed after the backlog's last empty
 * poll and before the close is reset by the kernel, unread; and, as with any HTTP/1.1
 * server, a request written on a kept-alive connection as the server closes it, idle
 * (`test/unit/lifecycle.test.ts`, `test/e2e/abuse/drain-singles.test.ts`).
 */
import type { AddressInfo } from 'node:net';
import type { Server, ServerResponse } from 'node:http';

/** How often a drain looks for connections that have finished their request, in ms. */
const DRAIN_POLL_MS = 20;

/** The responses each listening server has not finished yet. */
const responsesOf = new WeakMap<Server, Set<ServerResponse>>();
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
  if (responsesOf.has(server)) return;
  const responses = new Set<ServerResponse>();
  responsesOf.set(server, responses);
  // Before the server's own handler, so a stopping server's answer carries the header.
  server.prependListener('request', (_request, response) => {
    responses.add(response);
    response.once('close', () => responses.delete(response));
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
  for (const response of responsesOf.get(server) ?? []) if (!response.headersSent) response.setHeader('Connection', 'close');
  await acceptBacklog(server, drainMs / 2);
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  for (;;) {
    server.closeIdleConnections();
    const open = await new Promise<number>((resolve) => server.getConnections((error, count) => resolve(error ? 0 : count)));
    if (open === 0 || Date.now() >= deadline) break;
    await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
  }
  server.closeAllConnections();
  await closed;
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
