/**
 * A server role run as several processes on the same ports (`SUBSCRIBE_WORKERS`,
 * `PUBLISH_WORKERS`): the primary forks the workers and supervises them; each worker runs
 * the role's servers as a single process would, and Node's cluster hands each new
 * connection to the next worker. The workers share nothing but Redis, like separate
 * servers: each has its own Redis connections, its own delivery-report channel and its
 * own metrics registry.
 */
import cluster, { type Worker } from 'node:cluster';
import type { StructuredLogger } from './common/structured-logger.js';
import { StartupError } from './common/startup.js';

/** The roles that may run as several processes, and the setting that says how many. */
const WORKER_SETTINGS = { subscribe: 'SUBSCRIBE_WORKERS', publish: 'PUBLISH_WORKERS' } as const;
export type WorkerRole = keyof typeof WORKER_SETTINGS;

/** What a worker tells the primary once its servers listen on every port. */
const WORKER_STARTED = 'herald:started';

/**
 * The environment variable through which the primary gives every worker the one dev
 * secret it made (no `JWT_SECRET` nor `JWT_PUBLIC_KEY`, outside production), so a sample
 * token from the banner is good on whichever worker a connection reaches. Not a setting:
 * only the primary sets it, only in its workers' environment.
 */
const DEV_SECRET_VARIABLE = 'HERALD_WORKERS_DEV_SECRET';

/**
 * The workers `mode` runs, when its role's `*_WORKERS` setting asks for more than one
 * process; undefined when it runs as one. A `*_WORKERS` above 1 for another role is a
 * {@link StartupError} naming it: it would be ignored, and the operator would believe it
 * applied.
 */
export function workersFor(mode: string, counts: Readonly<Record<WorkerRole, number>>): { role: WorkerRole; count: number } | undefined {
  const roles = Object.keys(WORKER_SETTINGS) as WorkerRole[];
  const misplaced = roles.filter((role) => role !== mode && counts[role] > 1);
  if (misplaced.length > 0) {
    throw new StartupError(misplaced.map((role) => `${WORKER_SETTINGS[role]} applies to \`npm run start:${role}\` only`).join('; '));
  }
  const role = roles.find((candidate) => candidate === mode);
  return role !== undefined && counts[role] > 1 ? { role, count: counts[role] } : undefined;
}

/** In a worker: tells the primary that its servers listen (a worker that exits before this could not start). */
export function reportStarted(): void {
  if (cluster.isWorker) process.send?.(WORKER_STARTED);
}

/** In a worker: the dev secret the primary made for all of them, if it made one. */
export function sharedDevSecret(): string | undefined {
  return cluster.isWorker ? process.env[DEV_SECRET_VARIABLE] : undefined;
}

export interface SuperviseOptions {
  role: WorkerRole;
  /** Worker processes to keep running (`*_WORKERS`). */
  count: number;
  logger: StructuredLogger;
  /** One dev secret for every worker (see {@link sharedDevSecret}). @default none: the configured key */
  devSecret?: string | undefined;
}

/**
 * Forks `count` workers and keeps them running. A worker that dies after it started is
 * replaced; one that exits before it started (a port in use, a bad address: it printed
 * why) stops them all with exit 1, since another would fail the same way, forever.
 * SIGINT/SIGTERM is passed to every worker, each drains as a single server does, and
 * the primary exits once all have: 0 when every one stopped cleanly, else 1.
 */
export function superviseWorkers({ role, count, logger, devSecret }: SuperviseOptions): void {
  const env = devSecret === undefined ? undefined : { [DEV_SECRET_VARIABLE]: devSecret };
  const fork = (): Worker => cluster.fork(env);
  let stopping = false;
  const started = new Set<number>();
  cluster.on('message', (worker, message) => {
    if (message !== WORKER_STARTED) return;
    started.add(worker.id);
    if (started.size === count) logger.info(`herald: all ${count} ${role} workers are listening`);
    else if (started.size > count) logger.info(`herald: ${role} worker ${worker.process.pid} is listening (a replacement)`);
  });
  cluster.on('exit', (worker, code, signal) => {
    if (!stopping && !started.has(worker.id)) {
      logger.error(`herald: a ${role} worker could not start; stopping`);
      process.exitCode = 1;
      stop('SIGTERM');
    }
    if (stopping) {
      if (code !== 0) process.exitCode = 1;
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit();
      return;
    }
    logger.error(`herald: ${role} worker ${worker.process.pid} exited (${signal ?? code}); starting another`);
    fork();
  });
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    logger.info(`herald: ${signal}: stopping ${count} ${role} workers`);
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill(signal);
  };
  // `on`, not `once`: a group's signal forwarded by npm arrives twice (see main.ts).
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  for (let n = 0; n < count; n++) fork();
  logger.info(`herald: ${count} ${role} workers`);
}
