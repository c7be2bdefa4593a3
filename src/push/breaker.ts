/**
 * A circuit breaker per destination ({@link destinationOf}): after `failureThreshold`
 * sends in a row that got no answer (a network error, a timeout) or a 5xx, the
 * destination's circuit opens, and sends to it fail at once — retried later by the
 * worker's retry policy, never dropped, never taken for a gone device — instead of
 * each holding a slot until its timeout. After `cooldownMs` the circuit is half open:
 * the next send goes through as the one probe, the others still fail at once; the
 * probe's answer closes the circuit, its failure opens it for another cool-down.
 *
 * Only destinations with a recent failure are tracked: a success on a closed circuit
 * forgets it. At most `maxTracked` are kept; past that the least recently failed is
 * forgotten (as if closed), so a flood of distinct failing endpoints costs a bounded
 * amount of memory.
 */

export type CircuitState = 'closed' | 'open' | 'half_open';

/** Whether a send may go now. */
export type Admission =
  /** It may: as the half-open circuit's probe when `probe`. */
  | { readonly allowed: true; readonly probe: boolean }
  /**
   * It may not: the circuit is open (or its probe is in flight); try again after
   * `retryAfterMs` — the rest of the cool-down (a whole one while the probe is out), plus
   * a random part of up to half a cool-down.
   */
  | { readonly allowed: false; readonly state: 'open' | 'half_open'; readonly retryAfterMs: number };

export interface BreakerOptions {
  /**
   * `PUSH_BREAKER_FAILURES`: failed sends in a row (no answer, a timeout, or a 5xx) that
   * open a destination's circuit.
   * @default 5
   */
  failureThreshold?: number;
  /**
   * `PUSH_BREAKER_COOLDOWN_MS`: how long an open circuit fails sends at once before it
   * lets one probe through, in ms.
   * @default 30000
   */
  cooldownMs?: number;
  /** Most destinations tracked at once (each a few dozen bytes). @default 10000 */
  maxTracked?: number;
  /** The clock, in ms. @default Date.now */
  now?: () => number;
  /** Spreads the retries of refused sends, from 0 to 1. @default Math.random */
  random?: () => number;
  /** Told of every change of a circuit's state (a log line, a metric). */
  onTransition?: (destination: string, from: CircuitState, to: CircuitState) => void;
}

export interface Breakers {
  /** Asks whether a send to `destination` may go now; an allowed probe must be {@link record}ed. */
  admit(destination: string): Admission;
  /** The outcome of an allowed send: `healthy` unless it got no answer or a 5xx. */
  record(destination: string, admission: Admission & { allowed: true }, healthy: boolean): void;
  /** Circuits open or half open now. */
  counts(): { open: number; halfOpen: number };
  /** Transitions since start, by the state entered. */
  readonly transitions: Readonly<Record<CircuitState, number>>;
  /** Destinations tracked now (those with a recent failure). */
  readonly tracked: number;
  /** Up to `limit` circuits not closed, the most recently opened first (for metrics: a bounded list). */
  notClosed(limit: number): Array<{ readonly destination: string; readonly state: 'open' | 'half_open'; readonly openedAt: number }>;
}

interface Circuit {
  state: CircuitState;
  /** Failed sends in a row while closed. */
  failures: number;
  /** When it last opened. */
  openedAt: number;
  /** Half open with its probe in flight. */
  probing: boolean;
}

export function createBreakers(options: BreakerOptions = {}): Breakers {
  const threshold = options.failureThreshold ?? 5;
  const cooldownMs = options.cooldownMs ?? 30_000;
  const maxTracked = options.maxTracked ?? 10_000;
  const now = options.now ?? Date.now;
  const random = options.random ?? Math.random;
  /**
   * A refused send's wait: until the probe can go, plus up to half a cool-down, so the
   * sends held back (a tenant's whole share at once) come back spread out, not in one
   * burst of work the worker does for every tenant's sends at the same moment.
   */
  const refuse = (state: 'open' | 'half_open', untilProbeMs: number): Admission => ({
    allowed: false,
    state,
    retryAfterMs: Math.round(untilProbeMs + random() * (cooldownMs / 2)),
  });
  const circuits = new Map<string, Circuit>();
  const transitions: Record<CircuitState, number> = { closed: 0, open: 0, half_open: 0 };

  const move = (destination: string, circuit: Circuit, to: CircuitState): void => {
    const from = circuit.state;
    circuit.state = to;
    transitions[to] += 1;
    options.onTransition?.(destination, from, to);
  };
  const open = (destination: string, circuit: Circuit): void => {
    circuit.openedAt = now();
    circuit.probing = false;
    move(destination, circuit, 'open');
  };
  const close = (destination: string, circuit: Circuit): void => {
    circuits.delete(destination);
    move(destination, circuit, 'closed');
  };
  /** The circuit of a failed send, made the most recently failed (forgotten last). */
  const failing = (destination: string): Circuit => {
    const circuit = circuits.get(destination) ?? { state: 'closed', failures: 0, openedAt: 0, probing: false };
    circuits.delete(destination);
    circuits.set(destination, circuit);
    for (const [oldest] of circuits) {
      if (circuits.size <= maxTracked) break;
      circuits.delete(oldest);
    }
    return circuit;
  };

  return {
    get transitions() {
      return transitions;
    },
    get tracked() {
      return circuits.size;
    },
    admit(destination) {
      const circuit = circuits.get(destination);
      if (circuit === undefined || circuit.state === 'closed') return { allowed: true, probe: false };
      if (circuit.state === 'open') {
        const waitMs = circuit.openedAt + cooldownMs - now();
        if (waitMs > 0) return refuse('open', waitMs);
        move(destination, circuit, 'half_open');
      }
      // half open: one probe at a time; the rest come back after a cool-down
      if (circuit.probing) return refuse('half_open', cooldownMs);
      circuit.probing = true;
      return { allowed: true, probe: true };
    },
    record(destination, admission, healthy) {
      const circuit = circuits.get(destination);
      if (admission.probe && circuit?.state === 'half_open') {
        if (healthy) close(destination, circuit);
        else open(destination, failing(destination));
        return;
      }
      // a send let through before the circuit opened: the probe alone decides now
      if (circuit !== undefined && circuit.state !== 'closed') return;
      if (healthy) {
        circuits.delete(destination);
        return;
      }
      const failed = failing(destination);
      failed.failures += 1;
      if (failed.failures >= threshold) open(destination, failed);
    },
    notClosed(limit) {
      const found: Array<{ destination: string; state: 'open' | 'half_open'; openedAt: number }> = [];
      for (const [destination, circuit] of circuits) {
        if (circuit.state !== 'closed') found.push({ destination, state: circuit.state, openedAt: circuit.openedAt });
      }
      return found.sort((a, b) => b.openedAt - a.openedAt).slice(0, limit);
    },
    counts() {
      let openCount = 0;
      let halfOpen = 0;
      for (const circuit of circuits.values()) {
        if (circuit.state === 'open') openCount += 1;
        else if (circuit.state === 'half_open') halfOpen += 1;
      }
      return { open: openCount, halfOpen };
    },
  };
}
