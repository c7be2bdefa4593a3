/**
 * How long to wait before the next attempt of a push.
 *
 * Without a Retry-After: exponential backoff with "equal jitter" — half the step fixed,
 * half random — so the devices of one failed burst do not all come back in the same
 * millisecond. With a Retry-After: never earlier than it says, plus up to 10% (at most
 * 1 s) of jitter for the same reason.
 */
export interface RetryPolicy {
  /** The first wait, before jitter, in ms; each further attempt doubles it. */
  readonly baseMs: number;
  /** The longest wait in ms; a Retry-After asking for more gives up instead. */
  readonly maxMs: number;
}

/**
 * The wait before attempt `attempt + 1`, after attempt `attempt` (from 1) failed;
 * undefined when the far side asks for a wait past `policy.maxMs`.
 */
export function retryDelayMs(
  attempt: number,
  retryAfterMs: number | undefined,
  policy: RetryPolicy,
  random: () => number = Math.random,
): number | undefined {
  if (retryAfterMs !== undefined) {
    if (retryAfterMs > policy.maxMs) return undefined;
    return retryAfterMs + random() * Math.min(1000, retryAfterMs * 0.1);
  }
  const step = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, attempt - 1));
  return step / 2 + random() * (step / 2);
}
