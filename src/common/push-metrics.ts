/**
 * The push worker's labelled metrics (`metrics.ts` `pushWorker` adds them): what it did
 * by device kind and failure reason, and the push stream's backlog per shard. Counts are
 * the worker's plain integers, read at scrape; the backlog is asked of Redis at scrape.
 */
import { Counter, Gauge, type Registry } from 'prom-client';

/** What a push worker did for one device kind (`src/push/counters.ts`, `KindCounts`). */
export interface PushKindReport {
  readonly sent: number;
  /** Failed attempts by classified reason (`unregistered`, `invalid`, `rate_limited`, `timeout`, `provider_error`, `refused`, `circuit_open`). */
  readonly failed: Readonly<Record<string, number>>;
  readonly retried: number;
  readonly deadLettered: number;
  readonly devicesRemoved: number;
}

/** One shard of the push stream's backlog (`src/push/worker-types.ts`, `ShardLag`). */
export interface PushShardReport {
  readonly stream: string;
  readonly unread: number | null;
  readonly pending: number;
  readonly oldestPendingAgeMs: number | null;
  readonly oldestUnreadAgeMs: number | null;
}

/** One shard's retry set (`src/push/retry-set.ts`, `RetryLag`). */
export interface PushRetryReport {
  readonly set: string;
  readonly scheduled: number;
  readonly oldestOverdueMs: number;
}

/** The most circuits `herald_push_circuit` names one by one (the most recently opened). */
export const PUSH_CIRCUITS_NAMED = 20;

/** What a worker holds and sends now (`push/worker.ts` reports it; read at each scrape). */
export interface PushLoad {
  /** Sends holding a slot. */
  readonly sendsInFlight: number;
  /** Sends waiting for a slot (their tenant's, their destination's or the worker's). */
  readonly sendsWaiting: number;
  /** Entries this worker holds, waiting ones included. */
  readonly entriesHeld: number;
  /** Entries held but waiting for their tenant's turn. */
  readonly entriesWaiting: number;
  /** Retries claimed from the retry set and not yet settled or scheduled again. */
  readonly retriesHeld: number;
  /** Destinations whose circuit is open / half open (its probe not yet answered). */
  readonly circuitsOpen: number;
  readonly circuitsHalfOpen: number;
}

/** What a push worker reports (`src/push/worker.ts`), read at each scrape. */
export interface PushReport {
  /** Its counters (`src/push/counters.ts`), by camelCase name. */
  readonly counters: Readonly<Record<string, number>>;
  /** The counters exported by kind (and reason) instead of as one number, by device kind. */
  readonly byKind: Readonly<Record<string, PushKindReport>>;
  /** Up to `limit` circuits open or half open, by destination. */
  circuits(limit: number): ReadonlyArray<{ readonly destination: string; readonly state: string }>;
  /** The push stream's backlog per shard (Redis commands; a scrape waits for them). */
  shardLags(): Promise<readonly PushShardReport[]>;
  /** The retry sets per shard (Redis commands; a scrape waits for them); absent: not exported. */
  retryLags?(): Promise<readonly PushRetryReport[]>;
  /** Circuit-breaker transitions since start, by the state entered (`open`, `half_open`, `closed`). */
  readonly circuitTransitions: Readonly<Record<string, number>>;
  load(): PushLoad;
}

/** Counters exported by kind here, so not again as one unlabelled number. */
export const PUSH_BY_KIND: ReadonlySet<string> = new Set(['sent', 'failed', 'retried', 'deadLettered', 'devicesRemoved']);

/** `herald_push_{sent,failed,retried,dead_lettered,devices_removed}_total`, by `kind` (and `reason`). */
export function pushByKind(registry: Registry, report: PushReport): void {
  const byKind = (name: string, help: string, read: (row: PushKindReport) => number): void => {
    new Counter({
      name,
      help,
      labelNames: ['kind'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [kind, row] of Object.entries(report.byKind)) this.inc({ kind }, read(row));
      },
    });
  };
  byKind('herald_push_sent_total', 'Pushes the provider accepted, by device kind.', (row) => row.sent);
  byKind('herald_push_retried_total', 'Push attempts scheduled again after a retryable failure, by device kind.', (row) => row.retried);
  byKind('herald_push_dead_lettered_total', 'Pushes given up on and written to the dead-letter stream, by device kind.', (row) => row.deadLettered);
  byKind('herald_push_devices_removed_total', 'Devices removed because their provider said they are gone (FCM UNREGISTERED, APNs 410/BadDeviceToken, Web Push 404/410, webhook 410), by device kind.', (row) => row.devicesRemoved);
  new Counter({
    name: 'herald_push_failed_total',
    help: 'Push attempts that did not deliver, by device kind and reason: unregistered, invalid, rate_limited, timeout, provider_error, refused, circuit_open.',
    labelNames: ['kind', 'reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [kind, row] of Object.entries(report.byKind)) {
        for (const [reason, count] of Object.entries(row.failed)) this.inc({ kind, reason }, count);
      }
    },
  });
}

/**
 * `herald_push_queue_entries{shard,state}` (unread, pending) and
 * `herald_push_queue_oldest_age_seconds{shard,state}` (0 when none): the whole stream's,
 * every worker's together, so every worker exports the same numbers (take `max`). Absent
 * when Redis cannot answer (the scrape still succeeds).
 */
export function pushLagGauges(registry: Registry, report: PushReport): void {
  // One question to Redis per scrape: a scrape starts every metric's collect in
  // registration order, so the first gauge asks and the second awaits the same answer.
  let asked: Promise<readonly PushShardReport[] | undefined> | undefined;
  const ask = (): Promise<readonly PushShardReport[] | undefined> => (asked = report.shardLags().catch(() => undefined));
  new Gauge({
    name: 'herald_push_queue_entries',
    help: 'Push stream entries no worker has read yet (unread) and read but not yet acknowledged (pending), by shard; all workers together.',
    labelNames: ['shard', 'state'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const lag of (await ask()) ?? []) {
        if (lag.unread !== null) this.set({ shard: lag.stream, state: 'unread' }, lag.unread);
        this.set({ shard: lag.stream, state: 'pending' }, lag.pending);
      }
    },
  });
  new Gauge({
    name: 'herald_push_queue_oldest_age_seconds',
    help: 'How long ago the oldest unread / pending push stream entry was queued, by shard (0: none); all workers together.',
    labelNames: ['shard', 'state'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const lag of (await (asked ?? ask())) ?? []) {
        this.set({ shard: lag.stream, state: 'unread' }, (lag.oldestUnreadAgeMs ?? 0) / 1000);
        this.set({ shard: lag.stream, state: 'pending' }, (lag.oldestPendingAgeMs ?? 0) / 1000);
      }
    },
  });
}

/**
 * `herald_push_retries_scheduled{shard}` and `herald_push_retry_oldest_overdue_seconds{shard}`
 * (0: none overdue): the retry sets of every worker together, so every worker exports the
 * same numbers (take `max`). Absent when Redis cannot answer.
 */
export function pushRetryGauges(registry: Registry, report: PushReport): void {
  const retryLags = report.retryLags?.bind(report);
  if (retryLags === undefined) return;
  let asked: Promise<readonly PushRetryReport[] | undefined> | undefined;
  const ask = (): Promise<readonly PushRetryReport[] | undefined> => (asked = retryLags().catch(() => undefined));
  new Gauge({
    name: 'herald_push_retries_scheduled',
    help: 'Push retries scheduled in the retry set (waiting for their time, or being sent), by shard; all workers together.',
    labelNames: ['shard'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const lag of (await ask()) ?? []) this.set({ shard: lag.set }, lag.scheduled);
    },
  });
  new Gauge({
    name: 'herald_push_retry_oldest_overdue_seconds',
    help: 'How long the oldest due push retry no worker has claimed has been due, by shard (0: none); all workers together.',
    labelNames: ['shard'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const lag of (await (asked ?? ask())) ?? []) this.set({ shard: lag.set }, lag.oldestOverdueMs / 1000);
    },
  });
}
