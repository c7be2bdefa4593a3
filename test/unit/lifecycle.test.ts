/**
 * Stopping an HTTP server (`src/transports/http/lifecycle.ts`) on real sockets: the connections in
 * the listen backlog are served, not reset by the kernel (the old stop: 49 of 50
 * reset); a connection accepted before its request arrived is served; a request in
 * flight is answered with `Connection: close`; a kept-alive connection idle at the stop
 * is closed at once.
 */
import { createServer, request, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, shutdown } from '../../src/transports/http/lifecycle.js';

const servers: Server[] = [];
const sockets: Socket[] = [];
afterEach(() => {
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const server of servers.splice(0)) server.closeAllConnections();
});

async function startServer(handler: Parameters<typeof createServer>[1] = (_request, response) => void response.end('ok')) {
  const server = createServer(handler);
  servers.push(server);
  const port = await listen(server, 0, '127.0.0.1');
  return { server, port };
}

/** Everything the server sends on a raw connection until it closes it, or the socket's error code. */
function exchange(socket: Socket): Promise<string> {
  return new Promise((resolve) => {
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString()));
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    socket.once('close', () => resolve(received));
  });
}

const REQUEST = 'GET / HTTP/1.1\r\nHost: herald\r\n\r\n';

describe('shutdown', () => {
  it('serves every connection made before it, those still in the listen backlog included: none is reset', async () => {
    const { server, port } = await startServer();
    const clients = Array.from({ length: 50 }, () => {
      const socket = connect(port, '127.0.0.1');
      sockets.push(socket);
      const connected = new Promise<void>((resolve) => socket.once('connect', resolve));
      socket.write(REQUEST);
      return { connected, answer: exchange(socket) };
    });
    // The kernel completes each handshake; the server accepts one connection a turn of its loop.
    await Promise.all(clients.map(({ connected }) => connected));
    await shutdown(server, 10_000);
    const answers = await Promise.all(clients.map(({ answer }) => answer));
    expect(answers.filter((answer) => !answer.startsWith('HTTP/1.1 200'))).toEqual([]);
    expect(server.listening).toBe(false);
  });

  it('serves a connection accepted before its request arrived, the request sent after the port closed, and closes it after', async () => {
    const { server, port } = await startServer();
    const socket = connect(port, '127.0.0.1');
    sockets.push(socket);
    const answer = exchange(socket);
    await new Promise((resolve) => server.once('connection', resolve));
    const stopped = shutdown(server, 10_000);
    // Accepted, its request not begun: not idle to Node, so the stop leaves it to send one.
    while (server.listening) await new Promise((resolve) => setImmediate(resolve));
    expect(await new Promise((resolve) => connect(port, '127.0.0.1').once('error', (error: NodeJS.ErrnoException) => resolve(error.code)))).toBe('ECONNREFUSED');
    socket.write(REQUEST);
    expect(await answer).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*Connection: close\r\n[^]*ok$/);
    await stopped;
  });

  it('answers a request in flight with Connection: close, and closes a kept-alive connection idle at the stop at once', async () => {
    let release: () => void = () => undefined;
    const { server, port } = await startServer((request, response) => {
      if (request.url === '/slow') release = () => response.end('slow');
      else response.end('fast');
    });
    const get = (path: string) =>
      new Promise<{ connection: string | undefined; text: string }>((resolve, reject) => {
        request({ host: '127.0.0.1', port, path, headers: { connection: 'keep-alive' } }, (response) => {
          let text = '';
          response.on('data', (chunk: Buffer) => (text += chunk.toString()));
          response.once('end', () => resolve({ connection: response.headers.connection, text }));
        })
          .once('error', reject)
          .end();
      });
    // A kept-alive connection, idle once its response is read.
    const idle = connect(port, '127.0.0.1');
    sockets.push(idle);
    const idleClosed = exchange(idle);
    idle.write('GET / HTTP/1.1\r\nHost: herald\r\nConnection: keep-alive\r\n\r\n');
    await new Promise((resolve) => idle.once('data', resolve));

    const slow = get('/slow');
    await new Promise((resolve) => server.once('request', resolve));
    const stopped = shutdown(server, 60_000);
    // Closed long before the drain time, which a test would not outlive.
    expect(await idleClosed).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*keep-alive/i);
    release();
    expect(await slow).toEqual({ connection: 'close', text: 'slow' });
    await stopped;
  });
});
