/**
 * When the next attempt of a push is due: pure functions, the worker's clock passed in.
 *
 * Attempt 1 goes at once. The `maxAttempts - 1` retries fill a window an operator sets in
 * time (`PUSH_RETRY_WINDOW_MS`), counted from the first failure: retry `i` (from 1) is
 * drawn uniformly inside its own step, and the steps double and together fill the window,
 * step `i` being `window · 2^(i-1) / (2^(n-1) - 1)` long (n = `maxAttempts`). So the
 * retries keep their order, the whole stays inside the window, and the devices of one
 * failed burst do not all come back in the same millisecond ("full jitter" per step).
 *
 * A Retry-After moves the next attempt to no earlier than it says; one past `maxMs` gives
 * up instead. No wait is longer than `maxMs`. No attempt is made after the notification's
 * `ttl` has passed (`options.ts`: seconds from its timestamp).
 */
export interface RetryPolicy {
  /** The time the retries spread over, from the first failure, in ms. */
  readonly windowMs: number;
  /** The longest single wait, and the longest Retry-After honoured, in ms. */
  readonly maxMs: number;
  /** Attempts in all, the first one included (1: no retry). */
  readonly maxAttempts: number;
}

/** Where retry `retry` (from 1) may fall, in ms after the first failure: its step. */
export function retryStep(retry: number, policy: RetryPolicy): { readonly fromMs: number; readonly toMs: number } {
  const retries = policy.maxAttempts - 1;
  const total = 2 ** retries - 1;
  const at = (steps: number): number => (policy.windowMs * (2 ** steps - 1)) / total;
  return { fromMs: at(retry - 1), toMs: at(retry) };
}

/** What a failed attempt leads to. */
export type NextAttempt =
  | { readonly kind: 'retry'; readonly attempt: number; readonly at: number }
  /** Out of attempts. */
  | { readonly kind: 'exhausted' }
  /** The far side asked for a wait past `maxMs`. */
  | { readonly kind: 'retry_after_too_long' }
  /** The next attempt would fall after the notification's ttl. */
  | { readonly kind: 'ttl_passed'; readonly expiredAt: number };

export interface FailedAttempt {
  /** The attempt that failed, from 1. */
  readonly attempt: number;
  /** When the first attempt failed, ms since the epoch: the window's start. */
  readonly firstFailedAt: number;
  /** Now, ms since the epoch (the worker's clock). */
  readonly now: number;
  /** What the far side asked for, if anything. */
  readonly retryAfterMs?: number | undefined;
  /** When the notification's ttl ends, ms since the epoch; undefined: no ttl. */
  readonly expiresAt?: number | undefined;
}

/** The next attempt after `failed`, or why there is none. */
export function nextAttempt(failed: FailedAttempt, policy: RetryPolicy, random: () => number = Math.random): NextAttempt {
  if (failed.attempt >= policy.maxAttempts) return { kind: 'exhausted' };
  if (failed.retryAfterMs !== undefined && failed.retryAfterMs > policy.maxMs) return { kind: 'retry_after_too_long' };
  const { fromMs, toMs } = retryStep(failed.attempt, policy);
  let at = failed.firstFailedAt + fromMs + random() * (toMs - fromMs);
  at = Math.min(Math.max(at, failed.now), failed.now + policy.maxMs);
  if (failed.retryAfterMs !== undefined) at = Math.max(at, failed.now + failed.retryAfterMs);
  at = Math.ceil(at);
  if (failed.expiresAt !== undefined && at > failed.expiresAt) return { kind: 'ttl_passed', expiredAt: failed.expiresAt };
  return { kind: 'retry', attempt: failed.attempt + 1, at };
}

/** When a notification's push `ttl` (seconds from its timestamp, Unix seconds) ends; undefined without one. */
export function expiresAtOf(notification: { readonly timestamp: number; readonly options?: { readonly ttl?: number } }): number | undefined {
  const ttl = notification.options?.ttl;
  return ttl === undefined ? undefined : (notification.timestamp + ttl) * 1000;
}
