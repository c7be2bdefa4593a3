/**
 * WebSocket clients for tests: the real graphql-ws client for ordinary use, and a raw
 * `ws` socket for protocol edges the client would never produce.
 */
import { createClient, type Client, type FormattedExecutionResult } from 'graphql-ws';
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import WebSocket from 'ws';
import { createWaiters } from './waiters.js';
import { PATIENCE_MS } from './patience.js';

const clients: Client[] = [];
const sockets: WebSocket[] = [];

/** Disposes every client and socket opened here (call in `afterAll`/`afterEach`). */
export async function closeAllClients(): Promise<void> {
  await Promise.all(clients.splice(0).map((client) => client.dispose()));
  for (const socket of sockets.splice(0)) socket.terminate();
}

export interface ClientOptions {
  /** Sent as `{ authorization: "Bearer <token>" }` in `connection_init`. */
  token?: string;
  connectionParams?: Record<string, unknown>;
  /** Called when the socket closes, with its close code. */
  onClosed?: (code: number, reason: string) => void;
}

/** The real graphql-ws client; it never retries, so a close is final. */
export function wsClient(url: string, options: ClientOptions = {}): Client {
  const client = createClient({
    url,
    webSocketImpl: WebSocket,
    lazy: true,
    retryAttempts: 0,
    connectionParams: options.connectionParams ?? (options.token ? { authorization: `Bearer ${options.token}` } : {}),
    on: {
      closed: (event) => {
        const { code, reason } = event as { code: number; reason: string };
        options.onClosed?.(code, String(reason));
      },
    },
  });
  clients.push(client);
  return client;
}

export type Result = FormattedExecutionResult<Record<string, unknown>, unknown>;

/** A subscription's events, collected so a test can await the next one. */
export interface Collected {
  readonly results: Result[];
  /** Set when the subscription errored (socket closed, `error` message). */
  error: unknown;
  completed: boolean;
  /** Resolves with the `n`th result (0-based) once it has arrived. */
  nth(n: number, timeoutMs?: number): Promise<Result>;
  /** Resolves once the subscription completed or errored. */
  ended(timeoutMs?: number): Promise<void>;
  /** Completes the subscription from the client side. */
  unsubscribe(): void;
}

export function collect(client: Client, query: string, variables?: Record<string, unknown>): Collected {
  const waiters = createWaiters();
  const wake = waiters.wake;
  const seen = () => `got ${JSON.stringify(collected.results)}`;
  const until = (condition: () => boolean, what: string, timeoutMs: number): Promise<void> =>
    waiters.until(() => (condition() ? true : undefined), what, timeoutMs, seen).then(() => undefined);
  const collected: Collected = {
    results: [],
    error: undefined,
    completed: false,
    async nth(n, timeoutMs = PATIENCE_MS) {
      await until(() => collected.results.length > n || collected.completed, `result #${n}`, timeoutMs);
      const result = collected.results[n];
      if (!result) throw new Error(`the subscription ended after ${collected.results.length} results (error: ${String(collected.error)})`);
      return result;
    },
    ended: (timeoutMs = PATIENCE_MS) => until(() => collected.completed, 'the subscription to end', timeoutMs),
    unsubscribe: () => dispose(),
  };
  const dispose = client.subscribe<Record<string, unknown>>(
    { query, ...(variables ? { variables } : {}) },
    {
      next: (result) => {
        collected.results.push(result);
        wake();
      },
      error: (error) => {
        collected.error = error;
        collected.completed = true;
        wake();
      },
      complete: () => {
        collected.completed = true;
        wake();
      },
    },
  );
  return collected;
}

export const ON_NOTIFICATION = `subscription On($userName: String!) {
  onNotificationReceived(userName: $userName) { text timestamp audience sender }
}`;

/** A raw socket speaking graphql-transport-ws, for frames the real client never sends. */
export interface RawSocket {
  readonly socket: WebSocket;
  send(message: unknown): void;
  /** The next message received, parsed. */
  nextMessage(timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Resolves with the close code and reason. */
  closed(timeoutMs?: number): Promise<{ code: number; reason: string }>;
}

export async function rawSocket(
  url: string,
  options: { protocol?: string; headers?: Record<string, string>; maxPayload?: number } = {},
): Promise<RawSocket> {
  const socket = new WebSocket(url, options.protocol ?? 'graphql-transport-ws', { headers: options.headers ?? {} });
  sockets.push(socket);
  const messages: Array<Record<string, unknown>> = [];
  const waiters = createWaiters();
  let close: { code: number; reason: string } | undefined;
  socket.on('message', (data) => {
    messages.push(JSON.parse(String(data)) as Record<string, unknown>);
    waiters.wake();
  });
  socket.on('close', (code, reason) => {
    close = { code, reason: String(reason) };
    waiters.wake();
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  const wait = <T>(take: () => T | undefined, what: string, timeoutMs: number): Promise<T> => waiters.until(take, what, timeoutMs);
  return {
    socket,
    send: (message) => socket.send(typeof message === 'string' ? message : JSON.stringify(message)),
    nextMessage: (timeoutMs = PATIENCE_MS) =>
      wait(() => messages.shift() ?? (close ? ({ closed: close } as Record<string, unknown>) : undefined), 'a message', timeoutMs),
    closed: (timeoutMs = PATIENCE_MS) => wait(() => close, 'the socket to close', timeoutMs),
  };
}

/** `count` raw sockets, each past `connection_init` with `token`: fails unless each gets `connection_ack`. */
export async function acknowledgedSockets(url: string, count: number, token: string): Promise<RawSocket[]> {
  return Promise.all(
    Array.from({ length: count }, async () => {
      const socket = await rawSocket(url);
      socket.send({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } });
      const answer = await socket.nextMessage();
      if (answer['type'] !== 'connection_ack') throw new Error(`connection_init answered with ${JSON.stringify(answer)}`);
      return socket;
    }),
  );
}

/** Attempts an upgrade and resolves with the HTTP status the server refused it with. */
export function refusedUpgrade(url: string, protocol: string | undefined, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = protocol === undefined ? new WebSocket(url, { headers }) : new WebSocket(url, protocol, { headers });
    sockets.push(socket);
    socket.once('unexpected-response', (_request, response) => {
      resolve(response.statusCode ?? 0);
      socket.terminate();
    });
    socket.once('open', () => reject(new Error('the upgrade was accepted')));
    socket.once('error', () => undefined);
  });
}

/**
 * A graphql-transport-ws client on a bare TCP socket that sends `messages` (text frames,
 * masked as a client must) right after the upgrade and then never reads another byte:
 * unlike a paused `ws` socket, nothing resumes it. Resolves once the upgrade is done.
 */
export async function stalledSocket(url: string, messages: readonly unknown[], headers: Record<string, string> = {}): Promise<Socket> {
  const { hostname, port, pathname } = new URL(url);
  const socket = connect(Number(port), hostname);
  stalled.push(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const extra = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('');
  socket.write(
    `GET ${pathname} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n` +
      `Sec-WebSocket-Protocol: graphql-transport-ws\r\n${extra}\r\n`,
  );
  let head = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      socket.pause();
      if (head.startsWith('HTTP/1.1 101')) resolve();
      else reject(new Error(`upgrade refused: ${head.split('\r\n')[0]}`));
    };
    socket.on('data', onData);
  });
  for (const message of messages) socket.write(maskedTextFrame(typeof message === 'string' ? message : JSON.stringify(message)));
  return socket;
}

const stalled: Socket[] = [];

/** Destroys every socket {@link stalledSocket} opened. */
export function destroyStalledSockets(): void {
  for (const socket of stalled.splice(0)) socket.destroy();
}

/** One masked client text frame (RFC 6455 §5.2), as a browser would send it. */
export function maskedTextFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const length = payload.length;
  const header = length < 126 ? Buffer.from([0x81, 0x80 | length]) : length < 65_536 ? Buffer.alloc(4) : Buffer.alloc(10);
  if (length >= 126 && length < 65_536) {
    header[0] = 0x81;
    header[1] = 0x80 | 126;
    header.writeUInt16BE(length, 2);
  } else if (length >= 65_536) {
    header[0] = 0x81;
    header[1] = 0x80 | 127;
    header.writeBigUInt64BE(BigInt(length), 2);
  }
  const mask = randomBytes(4);
  const masked = Buffer.alloc(length);
  for (let i = 0; i < length; i++) masked[i] = (payload[i] ?? 0) ^ (mask[i % 4] ?? 0);
  return Buffer.concat([header, mask, masked]);
}
