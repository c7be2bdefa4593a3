/**
 * The HTTP/1.1 edge the Web Push and webhook senders share: one POST with a timeout and
 * no redirects, its status mapped to a {@link SendOutcome}.
 */
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

/**
 * POSTs `body` to `url`. Redirects are not followed (a push endpoint that redirects is
 * misconfigured, and following it would let a registered URL point the worker anywhere).
 * Rejects on a network error or after `timeoutMs`.
 */
export async function post(url: string, headers: Record<string, string>, body: string | Uint8Array, timeoutMs: number): Promise<PostResult> {
  // A controller of its own, its timer cleared as soon as the send ends: nothing of a
  // request outlives it (AbortSignal.timeout's timer would, for the whole timeout).
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { name: 'TimeoutError' })), timeoutMs);
  try {
    const response = await fetch(url, {
      method: 'POST',
      headers,
      // a Buffer is a Uint8Array; DOM's BodyInit typing wants the ArrayBuffer-backed kind
      body: typeof body === 'string' ? body : new Uint8Array(body),
      redirect: 'manual',
      signal: controller.signal,
    });
    // the body is never needed; cancelling it frees the connection for the next send
    await response.body?.cancel().catch(() => undefined);
    return { status: response.status, retryAfterMs: parseRetryAfter(response.headers.get('retry-after')) };
  } finally {
    clearTimeout(timer);
  }
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

/** A thrown network error or timeout, as a retry. */
export function networkRetry(error: unknown, what: string): SendOutcome {
  const detail = error instanceof Error ? (error.name === 'TimeoutError' ? 'timed out' : error.message) : String(error);
  return { outcome: 'retry', reason: `${what}: ${detail}`, endpointDown: true };
}
