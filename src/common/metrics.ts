/**
 * Herald's Prometheus metrics, in one prom-client registry per process: both servers'
 * and the gRPC servers' numbers, the default process metrics and the event-loop delay.
 *
 * The hot paths (a delivery, a publish) never call prom-client: they add to plain
 * integers in {@link HeraldMetrics.counts}, and each metric reads its integer when
 * Prometheus scrapes (`collect`). A delivery costs one increment, as it did before
 * there were metrics. Gauges (connections, subscriptions, channels) are read the same
 * way, from functions the servers register.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { PUSH_BY_KIND, PUSH_CIRCUITS_NAMED, pushByKind, pushLagGauges, pushRetryGauges, type PushReport } from './push-metrics.js';

export type { PushReport } from './push-metrics.js';

/** Plain integers the hot paths add to; read only when Prometheus scrapes. */
export interface HotCounts {
  /** Notifications handed to a live subscription, on any transport. */
  delivered: number;
  /** Notifications stored and published by this process. */
  published: number;
  /** WebSockets closed with 4413 for holding more than `MAX_BUFFERED_BYTES`. */
  slowConsumerCloses: number;
  /** Times a Redis connection of this process became ready again after a drop. */
  redisReconnects: number;
  /** Redis commands that failed (not sent, timed out, or refused). */
  redisCommandErrors: number;
  /** WebSocket tokens replaced in-band (`refreshToken`). */
  tokenRefreshes: number;
  /** In-band token refreshes refused (a bad token, another principal's). */
  tokenRefreshRefusals: number;
  /** Ledger events written to an existing ledger by this process's batches (`ledger/store.ts`). */
  ledgerEvents: number;
  /** Ledger batches this process could not write. */
  ledgerWriteFailures: number;
}

/** What a server reports about itself, read at each scrape. */
export type GaugeSource = () => number;

/** The transports a live subscription or connection can be on. */
export type Transport = 'websocket' | 'sse' | 'grpc';

export interface HeraldMetrics {
  readonly registry: Registry;
  readonly counts: HotCounts;
  /** Reports open connections (WebSocket, SSE stream, gRPC call) of `transport`. */
  connections(transport: Transport, source: GaugeSource): void;
  /** Reports open subscriptions of `transport`. */
  subscriptions(transport: Transport, source: GaugeSource): void;
  /** Reports the Redis channels this process holds subscribed. */
  channels(source: GaugeSource): void;
  /** A token refused, by why (`expired`, `malformed`, `signature`, `claims`, `missing`…). */
  authRefused(reason: string): void;
  /** A mutation answered after `seconds`, by operation field and outcome code (`OK` or the error code). */
  mutation(field: string, outcome: string, seconds: number): void;
  /** How long a counted publish waited for the subscribe servers' delivery reports. */
  reportWait(seconds: number): void;
  /** Exports a push worker's counters, load and circuit breakers (once per process). */
  pushWorker(report: PushReport): void;
}

export interface MetricsOptions {
  /** `subscribe`, `publish`, `all` (or `push`): a label on every metric. */
  role: string;
  /**
   * Collects prom-client's default process metrics (CPU, memory, handles, GC) and the
   * event-loop delay (`nodejs_eventloop_lag_*`). Off in tests that build many registries.
   * @default true
   */
  processMetrics?: boolean;
}

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export function createMetrics(options: MetricsOptions): HeraldMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ role: options.role });
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry });

  const counts: HotCounts = {
    delivered: 0,
    published: 0,
    slowConsumerCloses: 0,
    redisReconnects: 0,
    redisCommandErrors: 0,
    tokenRefreshes: 0,
    tokenRefreshRefusals: 0,
    ledgerEvents: 0,
    ledgerWriteFailures: 0,
  };
  /** A counter whose value is one of {@link counts}, read at scrape time. */
  const counted = (name: string, help: string, read: () => number): void => {
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  };
  counted('herald_notifications_delivered_total', 'Notifications handed to a live subscription, on any transport.', () => counts.delivered);
  counted('herald_notifications_published_total', 'Notifications stored and published by this process.', () => counts.published);
  counted('herald_slow_consumer_closes_total', 'WebSockets closed with 4413 for holding more than MAX_BUFFERED_BYTES.', () => counts.slowConsumerCloses);
  counted('herald_redis_reconnects_total', 'Times a Redis connection became ready again after a drop.', () => counts.redisReconnects);
  counted('herald_redis_command_errors_total', 'Redis commands that failed: not sent, timed out, or refused.', () => counts.redisCommandErrors);
  counted('herald_token_refreshes_total', 'WebSocket tokens replaced in-band with refreshToken.', () => counts.tokenRefreshes);
  counted('herald_token_refresh_refusals_total', 'In-band token refreshes refused: a bad or expired token, or another principal\'s.', () => counts.tokenRefreshRefusals);
  counted('herald_ledger_events_total', 'Ledger events this process wrote to a notification\'s ledger (beside the accepted ones, written by the publish itself).', () => counts.ledgerEvents);
  counted('herald_ledger_write_failures_total', 'Ledger batches this process could not write: their events are lost, delivery went on.', () => counts.ledgerWriteFailures);

  /** A gauge labelled by transport, each label's value read from its source at scrape time. */
  const byTransport = (name: string, help: string): ((transport: Transport, source: GaugeSource) => void) => {
    const sources = new Map<Transport, GaugeSource>();
    new Gauge({
      name,
      help,
      labelNames: ['transport'],
      registers: [registry],
      collect() {
        for (const [transport, source] of sources) this.set({ transport }, source());
      },
    });
    return (transport, source) => sources.set(transport, source);
  };
  const connections = byTransport('herald_connections', 'Open connections: WebSockets, SSE streams, gRPC Feed calls.');
  const subscriptions = byTransport('herald_subscriptions', 'Open subscriptions.');

  let channelSource: GaugeSource | undefined;
  new Gauge({
    name: 'herald_redis_channels',
    help: 'Redis channels this process holds subscribed (one per channel, however many observers).',
    registers: [registry],
    collect() {
      this.set(channelSource?.() ?? 0);
    },
  });

  const refusals = new Counter({
    name: 'herald_auth_refusals_total',
    help: 'Tokens refused, by reason.',
    labelNames: ['reason'],
    registers: [registry],
  });
  const mutations = new Histogram({
    name: 'herald_mutation_duration_seconds',
    help: 'Time to answer a mutation, by field and outcome (OK or the error code).',
    labelNames: ['field', 'outcome'],
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const reportWaits = new Histogram({
    name: 'herald_delivery_report_wait_seconds',
    help: 'Time a counted publish waited for the subscribe servers to report their deliveries.',
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });

  const pushWorker = (report: PushReport): void => {
    for (const name of Object.keys(report.counters)) {
      if (PUSH_BY_KIND.has(name)) continue;
      const snake = name.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
      counted(`herald_push_${snake}_total`, `Push worker: ${name} (src/push/counters.ts).`, () => report.counters[name] ?? 0);
    }
    /** A gauge whose labelled values come from the report's load at scrape time. */
    const loadGauge = (name: string, help: string, label: string, read: (load: ReturnType<PushReport['load']>) => Record<string, number>): void => {
      new Gauge({
        name,
        help,
        labelNames: [label],
        registers: [registry],
        collect() {
          for (const [value, count] of Object.entries(read(report.load()))) this.set({ [label]: value }, count);
        },
      });
    };
    loadGauge('herald_push_breakers', 'Push destinations whose circuit breaker is open, or half open (its probe not yet answered).', 'state', (load) => ({
      open: load.circuitsOpen,
      half_open: load.circuitsHalfOpen,
    }));
    loadGauge('herald_push_sends', 'Push sends holding a slot (in_flight) or waiting for one (waiting).', 'state', (load) => ({
      in_flight: load.sendsInFlight,
      waiting: load.sendsWaiting,
    }));
    loadGauge('herald_push_entries', 'Push stream entries the worker holds, and of them those waiting for their tenant\'s turn.', 'state', (load) => ({
      held: load.entriesHeld,
      waiting: load.entriesWaiting,
    }));
    pushByKind(registry, report);
    pushLagGauges(registry, report);
    pushRetryGauges(registry, report);
    new Gauge({
      name: 'herald_push_circuit',
      help: `Push destinations (<tenant> <origin>) whose circuit is open or half open (1), the ${PUSH_CIRCUITS_NAMED} most recently opened; herald_push_breakers counts them all.`,
      labelNames: ['destination', 'state'],
      registers: [registry],
      collect() {
        this.reset();
        for (const { destination, state } of report.circuits(PUSH_CIRCUITS_NAMED)) this.set({ destination, state }, 1);
      },
    });
    new Counter({
      name: 'herald_push_breaker_transitions_total',
      help: 'Push circuit-breaker transitions, by the state entered.',
      labelNames: ['to'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [to, count] of Object.entries(report.circuitTransitions)) this.inc({ to }, count);
      },
    });
  };

  return {
    registry,
    counts,
    pushWorker,
    connections,
    subscriptions,
    channels: (source) => {
      channelSource = source;
    },
    authRefused: (reason) => refusals.inc({ reason }),
    mutation: (field, outcome, seconds) => mutations.observe({ field, outcome }, seconds),
    reportWait: (seconds) => reportWaits.observe(seconds),
  };
}
