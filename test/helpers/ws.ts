/**
 * WebSocket clients for tests: the real graphql-ws client for ordinary use, and a raw
 * `ws` socket for protocol edges the client would never produce.
 */
import { createClient, type Client, type FormattedExecutionResult } from 'graphql-ws';
import WebSocket from 'ws';
import { createWaiters } from './waiters.js';

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
    async nth(n, timeoutMs = 5000) {
      await until(() => collected.results.length > n || collected.completed, `result #${n}`, timeoutMs);
      const result = collected.results[n];
      if (!result) throw new Error(`the subscription ended after ${collected.results.length} results (error: ${String(collected.error)})`);
      return result;
    },
    ended: (timeoutMs = 5000) => until(() => collected.completed, 'the subscription to end', timeoutMs),
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
    nextMessage: (timeoutMs = 5000) =>
      wait(() => messages.shift() ?? (close ? ({ closed: close } as Record<string, unknown>) : undefined), 'a message', timeoutMs),
    closed: (timeoutMs = 5000) => wait(() => close, 'the socket to close', timeoutMs),
  };
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
