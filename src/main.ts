/**
 * Herald's command line: `node dist/main.js [all|subscribe|publish|push]` (or
 * `node --import tsx src/main.ts …`, as `npm start` runs it).
 * Reads the environment, starts the servers, prints where they are, stops on SIGINT/SIGTERM.
 * Everything it says goes through the structured logger: JSON lines in production,
 * readable ones in development (where the banner is printed as it is, for people).
 */
import cluster from 'node:cluster';
import { generateDevSecret } from './auth/index.js';
import { createStructuredLogger, type StructuredLogger } from './common/structured-logger.js';
import { ConfigError, readConfig, type HeraldConfig } from './config/index.js';
import { redisLocation, startHerald, StartupError, type Mode, type RunningHerald } from './servers/herald.js';
import { reportStarted, sharedDevSecret, superviseWorkers, workersFor } from './workers.js';

const MODES: readonly Mode[] = ['all', 'subscribe', 'publish', 'push'];

const production = process.env['NODE_ENV'] === 'production';
/** The process's logger; until the configuration is read (and if it cannot be), at `info`. */
let logger = loggerFor(process.argv[2] ?? 'all', undefined);

/** A logger whose lines name `role` (and the cluster worker, in one), at `config`'s `LOG_LEVEL`. */
function loggerFor(role: string, config: HeraldConfig | undefined): StructuredLogger {
  const base = createStructuredLogger({ role, level: config?.logLevel ?? 'info', pretty: !production });
  return cluster.isWorker && cluster.worker ? base.child({ worker: cluster.worker.id }) : base;
}

async function main(): Promise<void> {
  const mode = (process.argv[2] ?? 'all') as Mode;
  if (!MODES.includes(mode)) throw new StartupError(`unknown mode "${mode}": use ${MODES.join(', ')}`);
  const config = readConfig();
  logger = loggerFor(mode, config);
  const workers = workersFor(mode, { subscribe: config.subscribeWorkers, publish: config.publishWorkers });
  if (workers !== undefined && cluster.isPrimary) {
    // One dev secret for all the workers (none configured): the banner's tokens are good on each.
    const devSecret = config.jwtSecret === undefined && config.jwtPublicKey === undefined ? generateDevSecret() : undefined;
    return superviseWorkers({ ...workers, logger, devSecret });
  }
  const herald = await startHerald(config, mode, logger, { devSecret: sharedDevSecret() });
  reportStarted();
  // With workers, one banner is enough: they all listen on the same ports.
  if (cluster.isPrimary || cluster.worker?.id === 1) printBanner(herald, redisLocation(config), mode, config.metricsHost);

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info(`herald: ${signal}: stopping`);
    herald.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error('herald: stop failed', error);
        process.exit(1);
      },
    );
  };
  // A signal sent to a whole process group (Ctrl-C in a terminal, `kill -- -<pgid>`) often
  // arrives twice: from the group, and from the parent that forwards it (npm to its
  // script, a primary to its workers). Node's default for a signal nobody listens to is to
  // die at once, so the listener stays: a second signal must not end the drain the first began.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => stop(signal));
}

function printBanner(herald: RunningHerald, redisAt: string | undefined, mode: Mode, metricsHost: string): void {
  const broker = redisAt === undefined ? 'in-process broker (no REDIS_URL)' : `Redis at ${redisAt}`;
  const what = mode === 'all' ? 'subscribe + publish servers' : mode === 'push' ? 'push worker' : `${mode} server`;
  const lines = [`herald: ${what} on the ${broker}`];
  const worker = herald.pushWorker;
  if (worker !== undefined) {
    lines.push(`  push worker ${worker.consumer}: ${worker.dryRun ? 'dry-run (NODE_ENV is not production): logs what it would send' : 'sending'}`);
  } else if (mode === 'all') {
    lines.push('  push worker: off (devices, topics and pushes need Redis: set REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES)');
  }
  if (herald.subscribePort !== undefined) {
    lines.push(
      herald.playground
        ? `  playground (GraphiQL): http://localhost:${herald.subscribePort}/graphql`
        : '  playground (GraphiQL): off (PLAYGROUND=on, with GRAPHQL_INTROSPECTION=on, serves it)',
    );
    lines.push(`  subscribe (WebSocket graphql-transport-ws, SSE): ws://localhost:${herald.subscribePort}/graphql`);
    if (herald.inboxPath !== undefined) {
      const page = `http://localhost:${herald.subscribePort}${herald.inboxPath}/`;
      lines.push(
        herald.devTokens
          ? `  inbox page (signed in as ${herald.devTokens.user.name}): ${page}#token=${herald.devTokens.user.token}`
          : `  inbox page: ${page}#token=<a user's token>`,
      );
    }
  }
  if (herald.corsLocalhost) {
    lines.push('  CORS (development): pages on any http://localhost:<port> or http://127.0.0.1:<port> may call these servers; production allows only CORS_ORIGINS');
  }
  if (herald.grpcPort !== undefined) lines.push(`  gRPC feed (herald.v1.NotificationFeed): localhost:${herald.grpcPort}`);
  if (herald.publishPort !== undefined) lines.push(`  publish (HTTP POST): http://localhost:${herald.publishPort}/graphql`);
  if (herald.publishPort !== undefined && herald.deliveryPath !== undefined) {
    lines.push(`  ledger page (why didn't X get Y: one notification's delivery(id)): http://localhost:${herald.publishPort}${herald.deliveryPath}`);
  }
  if (herald.publishGrpcPort !== undefined) lines.push(`  gRPC publish (herald.v1.NotificationPublisher): localhost:${herald.publishGrpcPort}`);
  if (herald.metricsPort !== undefined) lines.push(`  metrics (Prometheus, internal): http://${urlHost(metricsHost)}:${herald.metricsPort}/metrics`);
  const dev = herald.devTokens;
  if (dev) {
    lines.push(
      '',
      '  dev mode: JWT_SECRET is unset, so a secret was generated for this run (set JWT_SECRET to keep tokens valid).',
      `  token for user "${dev.user.name}" (tenant ${dev.user.tenant}, stores ${dev.user.stores.join(', ')}) — already in the playground's headers:`,
      `    ${dev.user.token}`,
      `  token for service "${dev.service.name}" (scope notifications:publish):`,
      `    ${dev.service.token}`,
    );
    if (herald.publishPort !== undefined) {
      lines.push(
        '',
        '  send alice a notification:',
        `    curl -s http://localhost:${herald.publishPort}/graphql -H 'Content-Type: application/json' \\`,
        `      -H 'Authorization: Bearer ${dev.service.token}' \\`,
        `      -d '{"query":"mutation { sendNotification(to: \\"alice\\", text: \\"hi\\") { receivedUsers } }"}'`,
      );
    }
  }
  // In production the banner is one log line like any other (its ports are in `msg`);
  // in development it is printed as it is, for the person at the terminal.
  if (production) logger.info(lines.join('\n'));
  else console.info(lines.join('\n'));
}

/** How to write a listening address in a URL: `localhost` for every address, brackets for IPv6. */
function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return 'localhost';
  return host.includes(':') ? `[${host}]` : host;
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError || error instanceof StartupError) {
    logger.error(`herald: ${error.message}`);
  } else {
    logger.error('herald: failed to start', error);
  }
  process.exit(1);
});
