/**
 * A few HTTP/2 connections to one origin, many requests in flight on each.
 *
 * A request goes to the connection with the fewest streams open. Another connection is
 * opened only while every open one is at the stream limit its server announced
 * (SETTINGS_MAX_CONCURRENT_STREAMS; Google's front ends announce 100), up to
 * `maxConnections`; past that, nghttp2 queues the request on the connection until a
 * stream frees. A connection that errs, closes or is sent GOAWAY leaves the pool (its
 * open streams still finish); the next request opens a fresh one.
 */
import http2 from 'node:http2';
import { createNetworkPolicy, refusedTarget, type NetworkPolicy } from '../network-policy.js';
import { parseRetryAfter } from './http.js';
import type { SendOutcome } from './types.js';

export interface Http2Response {
  readonly status: number;
  readonly headers: http2.IncomingHttpHeaders;
  /** The body as text, cut at `maxResponseBytes`. */
  readonly body: string;
}

export interface Http2PoolOptions {
  /** Most connections to the origin. @default 4 */
  maxConnections?: number;
  /**
   * Most bytes of a response body kept (the rest is read and dropped): error bodies are
   * small, and a misbehaving server must not grow the worker's memory.
   * @default 65536
   */
  maxResponseBytes?: number;
  /** A connection with no stream for this long is closed. @default 60000 (ms) */
  idleTimeoutMs?: number;
  /**
   * Which addresses the origin may be at (`PUSH_ALLOWED_NETWORKS`): an origin at a refused
   * address is never connected to, and every request rejects with a `RefusedTargetError`.
   * @default public addresses only
   */
  networkPolicy?: NetworkPolicy;
}

export interface Http2Pool {
  /** Sends one request; rejects on a connection error, a reset stream or after `timeoutMs`. */
  request(headers: http2.OutgoingHttpHeaders, body: string, timeoutMs: number): Promise<Http2Response>;
  /** Closes every connection once its streams are done. */
  close(): Promise<void>;
  /** Connections open now (for tests and metrics). */
  readonly connections: number;
}

/** Assumed until a server's SETTINGS arrive: the value Google's front ends announce. */
const ASSUMED_STREAM_LIMIT = 100;

interface Connection {
  readonly session: http2.ClientHttp2Session;
  active: number;
  limit: number;
}

export function createHttp2Pool(origin: string, options: Http2PoolOptions = {}): Http2Pool {
  const maxConnections = options.maxConnections ?? 4;
  const maxResponseBytes = options.maxResponseBytes ?? 65_536;
  const idleTimeoutMs = options.idleTimeoutMs ?? 60_000;
  const policy = options.networkPolicy ?? createNetworkPolicy();
  const pool: Connection[] = [];
  /** An origin given as a refused address literal: the socket would connect to it without a lookup. */
  const literalRefusal = ((): Error | undefined => {
    try {
      policy.assertLiteralAllowed(new URL(origin).hostname);
      return undefined;
    } catch (error) {
      return refusedTarget(error);
    }
  })();

  const leave = (connection: Connection): void => {
    const index = pool.indexOf(connection);
    if (index !== -1) pool.splice(index, 1);
  };
  const open = (): Connection => {
    const session = http2.connect(origin, { lookup: policy.lookup });
    const connection: Connection = { session, active: 0, limit: ASSUMED_STREAM_LIMIT };
    session.on('remoteSettings', (settings) => {
      connection.limit = settings.maxConcurrentStreams ?? connection.limit;
    });
    // requests on it fail through their own streams; the pool only stops choosing it
    session.on('error', () => leave(connection));
    session.on('goaway', () => leave(connection));
    session.on('close', () => leave(connection));
    session.setTimeout(idleTimeoutMs, () => {
      if (connection.active === 0) session.close();
    });
    pool.push(connection);
    return connection;
  };
  const choose = (): Connection => {
    let best: Connection | undefined;
    for (const connection of pool) {
      if (best === undefined || connection.active < best.active) best = connection;
    }
    if (best === undefined || (best.active >= best.limit && pool.length < maxConnections)) return open();
    return best;
  };

  return {
    get connections() {
      return pool.length;
    },
    request(headers, body, timeoutMs) {
      return new Promise((resolve, reject) => {
        if (literalRefusal !== undefined) {
          reject(literalRefusal);
          return;
        }
        const connection = choose();
        let stream: http2.ClientHttp2Stream;
        try {
          stream = connection.session.request(headers);
        } catch (error) {
          leave(connection);
          reject(error instanceof Error ? error : new Error(String(error)));
          return;
        }
        connection.active += 1;
        let status = 0;
        let responseHeaders: http2.IncomingHttpHeaders = {};
        let failure: Error | undefined;
        const chunks: Buffer[] = [];
        let kept = 0;
        stream.setTimeout(timeoutMs, () => {
          failure = Object.assign(new Error(`no answer within ${timeoutMs} ms`), { name: 'TimeoutError' });
          stream.close(http2.constants.NGHTTP2_CANCEL);
        });
        stream.on('response', (received) => {
          responseHeaders = received;
          status = Number(received[':status']);
        });
        stream.on('data', (chunk: Buffer) => {
          if (kept >= maxResponseBytes) return;
          const part = chunk.subarray(0, maxResponseBytes - kept);
          chunks.push(part);
          kept += part.length;
        });
        stream.on('error', (error) => {
          failure ??= error;
        });
        stream.on('close', () => {
          connection.active -= 1;
          if (failure !== undefined) reject(failure);
          else if (status === 0) reject(new Error(`stream closed without a response (code ${stream.rstCode})`));
          else resolve({ status, headers: responseHeaders, body: Buffer.concat(chunks).toString('utf8') });
        });
        stream.end(body);
      });
    },
    async close() {
      const closing = pool.splice(0).map(({ session }) => new Promise<void>((resolve) => session.close(() => resolve())));
      await Promise.all(closing);
    },
  };
}

/**
 * A provider's "try again later" (429, a 5xx; FCM's 401 too): its `Retry-After` honoured,
 * and a 5xx marks the endpoint down for the circuit breaker.
 */
export function retryOutcome(response: Http2Response, reason: string): SendOutcome {
  const header = response.headers['retry-after'];
  const retryAfterMs = parseRetryAfter(Array.isArray(header) ? header[0] : header);
  return { outcome: 'retry', reason, ...(retryAfterMs === undefined ? {} : { retryAfterMs }), ...(response.status >= 500 ? { endpointDown: true } : {}) };
}
