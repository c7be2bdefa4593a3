/**
 * The HTTP/1.1 edge the Web Push and webhook senders share: one POST with a timeout, no
 * redirects, and only to addresses the network policy allows; its status mapped to a
 * {@link SendOutcome}.
 */
import http from 'node:http';
import https from 'node:https';
import { refusedTarget, type NetworkPolicy } from '../network-policy.js';
import type { SendOutcome } from './types.js';

/** A `Retry-After` header (delta-seconds or an HTTP date) in ms from `now`; undefined if absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | undefined {
  if (value === null || value === undefined || value.trim() === '') return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

export interface PostResult {
  readonly status: number;
  readonly retryAfterMs: number | undefined;
}

export interface HttpPoster {
  /**
   * POSTs `body` to `url` (`http:` or `https:`) and resolves with the answer's status.
   * The target's addresses are checked first ({@link NetworkPolicy}): a refused one
   * rejects with a `RefusedTargetError` and no connection is made. Redirects are not
   * followed (a push endpoint that redirects is misconfigured, and following it would
   * let a registered URL point the worker anywhere): a 3xx is an answer like any other.
   * Rejects on a network error, or after `timeoutMs` without an answer.
   */
  post(url: string, headers: Record<string, string>, body: string | Uint8Array, timeoutMs: number): Promise<PostResult>;
  /** Closes the kept-alive connections. */
  close(): void;
}

/**
 * How long a kept-alive connection may sit idle before it is closed, in ms: fetch's
 * (undici's) default, which these senders used before. With many receivers, idle sockets
 * would otherwise pile up until each far side closes its own. (A socket with a request in
 * flight is bounded by the request's own timeout, not by this.)
 */
const IDLE_SOCKET_MS = 4000;

/** POSTs over kept-alive connections whose every address `policy` allows. */
export function createHttpPoster(policy: NetworkPolicy): HttpPoster {
  const options = { keepAlive: true, timeout: IDLE_SOCKET_MS };
  const agents = { 'http:': new http.Agent(options), 'https:': new https.Agent(options) };
  return {
    post: (url, headers, body, timeoutMs) =>
      new Promise((resolve, reject) => {
        const target = new URL(url);
        if (target.protocol !== 'http:' && target.protocol !== 'https:') {
          reject(new Error(`${target.protocol} is not http: or https:`));
          return;
        }
        try {
          // a socket connects to an address literal without calling the lookup below
          policy.assertLiteralAllowed(target.hostname);
        } catch (error) {
          reject(error);
          return;
        }
        const client = target.protocol === 'https:' ? https : http;
        const request = client.request(target, { method: 'POST', headers, agent: agents[target.protocol], lookup: policy.lookup });
        // bounds the wait for the answer and, after it, the reading of its body
        const timer = setTimeout(() => request.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { name: 'TimeoutError' })), timeoutMs);
        request.on('response', (response) => {
          const retryAfter = response.headers['retry-after'];
          resolve({ status: response.statusCode ?? 0, retryAfterMs: parseRetryAfter(retryAfter) });
          // the body is never needed: read and dropped, so the connection serves the next POST
          response.on('error', () => undefined);
          response.resume();
        });
        request.on('error', (error) => {
          clearTimeout(timer);
          reject(error);
        });
        request.on('close', () => clearTimeout(timer));
        request.end(body);
      }),
    close() {
      agents['http:'].destroy();
      agents['https:'].destroy();
    },
  };
}

/** The outcome of a POST that did not answer 2xx: 429 and 5xx retry, honouring Retry-After. */
export function retryOrFail(result: PostResult, what: string): SendOutcome {
  const reason = `${what} answered ${result.status}`;
  if (result.status === 408 || result.status === 429 || result.status >= 500) return retryAnswer(result, reason);
  return { outcome: 'failed', reason };
}

/** A `retry` for an answer: Retry-After kept, and a 5xx marked as the endpoint being down. */
export function retryAnswer(result: PostResult, reason: string): SendOutcome {
  return {
    outcome: 'retry',
    reason,
    ...(result.retryAfterMs === undefined ? {} : { retryAfterMs: result.retryAfterMs }),
    ...(result.status >= 500 ? { endpointDown: true } : {}),
  };
}

/**
 * A thrown network error or timeout as a retry, the endpoint marked down (for its
 * breaker); a target the network policy refused as `refused`, for good (it is not tried
 * again, the device stays, and the breaker does not count it).
 */
export function networkOutcome(error: unknown, what: string): SendOutcome {
  const refused = refusedTarget(error);
  if (refused !== undefined) return { outcome: 'refused', reason: `${what}: ${refused.message}` };
  const detail = error instanceof Error ? (error.name === 'TimeoutError' ? 'timed out' : error.message) : String(error);
  return { outcome: 'retry', reason: `${what}: ${detail}`, endpointDown: true };
}
