/**
 * How long to wait before reconnecting: full-jitter exponential backoff (a uniformly
 * random wait up to a cap that doubles per attempt), as centrifuge-js does, so clients
 * dropped together by a restart do not come back together.
 */

export interface BackoffOptions {
  /** The shortest wait, in ms. @default 500 */
  minMs?: number;
  /** The longest wait, in ms. @default 20000 */
  maxMs?: number;
  /** Random numbers in [0, 1). @default Math.random */
  random?: () => number;
}

/** The cap grows this much faster, and the floor is this many times higher, after the server said it is overloaded (4429). */
const OVERLOAD_FACTOR = 8;

/**
 * The wait before reconnect attempt `attempt` (0 for the first after a drop), in ms:
 * uniform in [min, min(max, min·2^(attempt+1))] — 0.5–1 s, 0.5–2 s, … 0.5–20 s; after an
 * overload close from 8·min (4 s) up to min(max, 8·min·2^(attempt+1)).
 */
export function reconnectDelay(attempt: number, overloaded: boolean, options: BackoffOptions = {}): number {
  const { minMs = 500, maxMs = 20_000, random = Math.random } = options;
  const floor = Math.min(maxMs, overloaded ? minMs * OVERLOAD_FACTOR : minMs);
  const cap = Math.min(maxMs, floor * 2 ** (Math.min(attempt, 30) + 1));
  return floor + random() * (cap - floor);
}
