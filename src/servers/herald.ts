/**
 * Wires Herald from a {@link HeraldConfig}: the broker (Redis or in-process), the token
 * verifier and the servers a mode asks for. `main.ts` calls it; so can tests.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { createTokenVerifier, generateDevSecret } from '../auth/index.js';
import { signDevTokens, type DevTokens } from '../auth/dev-tokens.js';
import { createInProcessBroker } from '../broker/in-process.js';
import { createRedisBroker } from '../broker/redis.js';
import { watchRedisLiveness } from '../redis/liveness.js';
import { clusterClientOptions, keepSentinelClientConnected, redisClientOptions, sentinelClientOptions, shardSubscriberOptions } from '../redis/connection.js';
import type { Broker } from '../broker/types.js';
import { createNamer, type Namer } from '../names/index.js';
import type { Logger } from '../common/logger.js';
import { listenFailure, redactUrl, StartupError } from '../common/startup.js';
import type { HeraldServer } from '../common/server.js';
import type { HeraldConfig } from '../config/index.js';
import { createFeedGrpcServer, createPublishGrpcServer } from './grpc.js';
import { createMetrics, type HeraldMetrics } from '../common/metrics.js';
import { createMetricsServer } from '../transports/metrics.js';
import { createPublishServer } from './publish.js';
import { createSubscribeServer } from './subscribe.js';
import { createPushParts, createPushWorkerFromConfig } from '../push/index.js';
import type { PushCounters } from '../push/counters.js';
import type { CircuitState } from '../push/breaker.js';
import type { PushLoad } from '../push/worker.js';

/** Which servers one process runs (`push`: the push worker alone). */
export type Mode = 'all' | 'subscribe' | 'publish' | 'push';

export interface RunningHerald {
  /** The subscribe server's port, when this mode runs one. */
  readonly subscribePort: number | undefined;
  /** Whether the subscribe server serves GraphiQL (`PLAYGROUND`). */
  readonly playground: boolean;
  /** Whether any localhost origin may call the servers (development CORS). */
  readonly corsLocalhost: boolean;
  /** The inbox page's path on the subscribe server, when it serves it (development, once built). */
  readonly inboxPath: string | undefined;
  /** The publish server's port, when this mode runs one. */
  readonly publishPort: number | undefined;
  /** The gRPC `Feed` port, beside the subscribe server. */
  readonly grpcPort: number | undefined;
  /** The gRPC `Send` port, beside the publish server. */
  readonly publishGrpcPort: number | undefined;
  /** The internal `/metrics` port (`METRICS_PORT`), when set. */
  readonly metricsPort: number | undefined;
  /** The servers' broker; none for the push worker alone. */
  readonly broker: Broker | undefined;
  /** Sample tokens, in dev mode only (no `JWT_SECRET` nor `JWT_PUBLIC_KEY`). */
  readonly devTokens: DevTokens | undefined;
  /** The push worker this process runs: `push` mode, and `all` with `REDIS_URL`. */
  readonly pushWorker: RunningPushWorker | undefined;
  /** Stops the servers, then the broker, then the Redis connections. */
  stop(): Promise<void>;
}

/**
 * How long start-up waits for Redis before it listens anyway: a server that listens
 * with Redis ready takes its first subscription without a SERVICE_UNAVAILABLE.
 */
const REDIS_READY_WAIT_MS = 5000;

/** Resolves true once `broker` is ready, or false after `timeoutMs`. */
async function becomesReady(broker: Broker, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!broker.isReady()) {
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}

export { StartupError };

/** Where `npm run build:inbox` writes the inbox page (from src/ or dist/ alike). */
const INBOX_DIRECTORY = fileURLToPath(new URL('../../examples/inbox/dist', import.meta.url));
const INBOX_PATH = '/inbox';

/** The settings a broker is made from. */
export type BrokerSettings = Pick<HeraldConfig, 'redisUrl' | 'redisCommandTimeoutMs' | 'deliveryAckTimeoutMs' | 'retention'> &
  Partial<Pick<HeraldConfig, 'redisSentinel' | 'redisCluster' | 'redisMinReplicasAcked'>>;

export interface ConnectedBroker {
  readonly broker: Broker;
  /** The Redis broker's connections on one node or behind Sentinel (SUBSCRIBE only, and everything else); none in-process or on a Cluster. */
  readonly subscriber: Redis | undefined;
  readonly publisher: Redis | undefined;
  /** The Redis broker's command client on a Cluster (its shard subscribers are the broker's own). */
  readonly cluster: Cluster | undefined;
  /** ioredis' last connection error, to say why Redis is unreachable. */
  lastRedisError(): string | undefined;
}

/** Where the settings say Redis is, for messages (password hidden); undefined in-process. */
export function redisLocation(settings: BrokerSettings): string | undefined {
  if (settings.redisUrl !== undefined) return `REDIS_URL ${redactUrl(settings.redisUrl)}`;
  if (settings.redisSentinel !== undefined) {
    const { sentinels, masterName } = settings.redisSentinel;
    return `REDIS_SENTINELS ${sentinels.map(({ host, port }) => `${host}:${port}`).join(',')} (master "${masterName}")`;
  }
  if (settings.redisCluster !== undefined) return `REDIS_CLUSTER_NODES ${settings.redisCluster.nodes.map(({ host, port }) => `${host}:${port}`).join(',')}`;
  return undefined;
}

/**
 * The broker `settings` ask for: on Redis (two connections of its own, this process's
 * own report channel) with `redisUrl` or `redisSentinel` (whose connections follow a
 * failover to the promoted replica), else in-process. Closing it leaves the connections
 * open: the caller quits them after `broker.close()`. `redisOptions` are laid over
 * Herald's own client options (tests reconnect faster).
 */
export function connectBroker(
  settings: BrokerSettings,
  namer: Namer,
  logger: Logger,
  redisOptions: RedisOptions = {},
  metrics?: Pick<HeraldMetrics, 'counts' | 'reportWait'>,
): ConnectedBroker {
  const { redisUrl, redisSentinel, redisCluster } = settings;
  if (redisUrl === undefined && redisSentinel === undefined && redisCluster === undefined) {
    const broker = createInProcessBroker({ retention: settings.retention });
    return { broker, subscriber: undefined, publisher: undefined, cluster: undefined, lastRedisError: () => undefined };
  }
  const brokerOptions = {
    reportChannel: namer.deliveryReportChannel(randomUUID()),
    reportTimeoutMs: settings.deliveryAckTimeoutMs,
    retention: settings.retention,
    logger,
    ...(metrics ? { counts: metrics.counts, onReportWait: metrics.reportWait } : {}),
    minReplicasAcked: settings.redisMinReplicasAcked ?? 0,
    // Half the command timeout: Redis' own answer to WAIT (how many replicas acknowledged)
    // must arrive before ioredis gives up on the command.
    waitTimeoutMs: Math.max(1, Math.floor(settings.redisCommandTimeoutMs / 2)),
    pingTimeoutMs: settings.redisCommandTimeoutMs,
  };
  let lastRedisError: string | undefined;
  if (redisCluster !== undefined) {
    const { startupNodes, options } = clusterClientOptions(redisCluster, settings.redisCommandTimeoutMs);
    const cluster = new Cluster(startupNodes, { ...options, redisOptions: { ...options.redisOptions, connectionName: 'herald-publisher' } });
    cluster.on('error', (error: Error) => (lastRedisError = error.message));
    const broker = createRedisBroker({
      ...brokerOptions,
      publisher: cluster,
      subscriber: (node) => new Redis({ ...shardSubscriberOptions(redisCluster, settings.redisCommandTimeoutMs), ...node, connectionName: 'herald-subscriber' }),
    });
    return { broker, subscriber: undefined, publisher: undefined, cluster, lastRedisError: () => lastRedisError };
  }
  const connect = (connectionName: string): Redis => {
    if (redisSentinel !== undefined) {
      return new Redis({ ...sentinelClientOptions(redisSentinel, settings.redisCommandTimeoutMs), ...redisOptions, connectionName });
    }
    return new Redis(redisUrl ?? '', { ...redisClientOptions(settings.redisCommandTimeoutMs), ...redisOptions, connectionName });
  };
  const subscriber = connect('herald-subscriber');
  const publisher = connect('herald-publisher');
  let closing = false;
  if (redisSentinel !== undefined) {
    for (const client of [subscriber, publisher]) keepSentinelClientConnected(client, () => !closing, logger);
  }
  publisher.on('error', (error: Error) => (lastRedisError = error.message));
  const redisBroker = createRedisBroker({ ...brokerOptions, subscriber, publisher });
  const broker: Broker = {
    ...redisBroker,
    close() {
      closing = true;
      return redisBroker.close();
    },
  };
  return { broker, subscriber, publisher, cluster: undefined, lastRedisError: () => lastRedisError };
}

export interface RunningPushWorker {
  /** Its consumer name in the `push-workers` group. */
  readonly consumer: string;
  /** Whether it only logs what it would send (`NODE_ENV` is not production). */
  readonly dryRun: boolean;
  /** What it has done since it started (exported as `herald_push_*_total`). */
  readonly counters: Readonly<PushCounters>;
  /** Circuit-breaker transitions since start, by the state entered. */
  readonly circuitTransitions: Readonly<Record<CircuitState, number>>;
  /** What it holds and sends now. */
  load(): PushLoad;
  /** Stops reading, lets the sends in flight finish, then closes its connections. */
  stop(): Promise<void>;
}

/**
 * The push worker on two connections of its own: one for commands, one for its blocking
 * XREADGROUP (whose command timeout outlasts the 5 s block). It starts once both are
 * ready — waiting, with a warning after {@link REDIS_READY_WAIT_MS}, while Redis is
 * away — since Herald's connections queue nothing while disconnected.
 */
export async function startPushWorker(config: HeraldConfig, redisUrl: string, logger: Logger = console): Promise<RunningPushWorker> {
  const options = redisClientOptions(config.redisCommandTimeoutMs);
  const redis = new Redis(redisUrl, { ...options, connectionName: 'herald-push' });
  // The reader blocks in XREADGROUP for up to PUSH_BLOCK_MS: its timeouts outlast the
  // block, and it is not PINGed (a PING would wait behind the block); a command is always
  // waiting on it, so ioredis' socketTimeout alone replaces it when it goes silent.
  const blockingTimeoutMs = config.redisCommandTimeoutMs + PUSH_BLOCK_MS;
  const reader = new Redis(redisUrl, { ...options, commandTimeout: blockingTimeoutMs, socketTimeout: blockingTimeoutMs, connectionName: 'herald-push-reader' });
  const clients = [redis, reader];
  const liveness = watchRedisLiveness({ connections: () => [redis], timeoutMs: config.redisCommandTimeoutMs, logger });
  let lastError: string | undefined;
  for (const client of clients) client.on('error', (error: Error) => (lastError = error.message));
  const close = () => {
    liveness.close();
    return Promise.all(clients.map((client) => client.quit().catch(() => client.disconnect())));
  };
  const ready = Promise.all(clients.map((client) => (client.status === 'ready' ? undefined : new Promise((resolve) => client.once('ready', resolve)))));
  const warning = setTimeout(() => {
    logger.warn(`herald: push worker: Redis at ${redactUrl(redisUrl)} is not reachable after ${REDIS_READY_WAIT_MS / 1000} s${lastError === undefined ? '' : ` (${lastError})`}: waiting for it`);
  }, REDIS_READY_WAIT_MS);
  try {
    await ready;
  } finally {
    clearTimeout(warning);
  }
  const worker = createPushWorkerFromConfig({ config, redis, reader, logger });
  try {
    await worker.start();
  } catch (error) {
    await close();
    throw error;
  }
  return {
    consumer: worker.consumer,
    dryRun: config.push.dryRun,
    counters: worker.counters,
    circuitTransitions: worker.circuitTransitions,
    load: () => worker.load(),
    async stop() {
      await worker.stop();
      await close();
    },
  };
}

/** Starts the internal metrics server on `METRICS_HOST` (default `HOST`) and `METRICS_PORT`; a failure names the variable to change. */
async function listenForMetrics(server: HeraldServer, config: HeraldConfig): Promise<number> {
  const port = config.metricsPort ?? 0;
  try {
    return await server.start(port, config.metricsHost);
  } catch (error) {
    throw listenFailure('METRICS_PORT', port, config.metricsHost, error, 'METRICS_HOST');
  }
}

/** How long the worker's XREADGROUP blocks (the worker's `blockMs` default). */
const PUSH_BLOCK_MS = 5000;

export async function startHerald(config: HeraldConfig, mode: Mode, logger: Logger = console): Promise<RunningHerald> {
  if (mode === 'push' && config.redisUrl === undefined) {
    throw new StartupError('REDIS_URL is required to run the push worker (it does not run behind Sentinel or on a Cluster yet)');
  }
  const location = redisLocation(config);
  if (mode !== 'all' && location === undefined) {
    throw new StartupError(
      `REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES is required to run the ${mode} server alone (only \`npm start\` may use the in-process broker)`,
    );
  }
  if (mode === 'push') {
    // The worker's own registry (the process's metrics, its counters, load and circuit
    // breakers), on METRICS_PORT, for whoever scrapes it.
    const pushMetrics = createMetrics({ role: mode, processMetrics: config.metricsPort !== undefined });
    const metricsServer = config.metricsPort === undefined ? undefined : createMetricsServer(pushMetrics.registry);
    const metricsPort = metricsServer && (await listenForMetrics(metricsServer, config));
    let pushWorker: RunningPushWorker;
    try {
      pushWorker = await startPushWorker(config, config.redisUrl ?? '', logger);
    } catch (error) {
      await metricsServer?.stop();
      throw error;
    }
    pushMetrics.pushWorker(pushWorker);
    return {
      subscribePort: undefined,
      playground: false,
      corsLocalhost: false,
      inboxPath: undefined,
      publishPort: undefined,
      grpcPort: undefined,
      publishGrpcPort: undefined,
      metricsPort,
      broker: undefined,
      devTokens: undefined,
      pushWorker,
      async stop() {
        await pushWorker.stop();
        await metricsServer?.stop();
      },
    };
  }
  const devSecret = config.jwtSecret === undefined && config.jwtPublicKey === undefined ? generateDevSecret() : undefined;
  // One registry for every server of this process; the process metrics only when someone scrapes them.
  const metrics = createMetrics({ role: mode, processMetrics: config.metricsPort !== undefined });
  const verifier = createTokenVerifier({ secret: config.jwtSecret ?? devSecret, publicKey: config.jwtPublicKey, onRefused: metrics.authRefused });
  const devTokens = devSecret === undefined ? undefined : signDevTokens(devSecret);
  const namer = createNamer(config.channelPrefix);

  const connected = connectBroker(config, namer, logger, {}, metrics);
  const { broker } = connected;
  const clients = [connected.subscriber, connected.publisher, connected.cluster].filter((client): client is Redis | Cluster => client !== undefined);

  // Devices, topics, seen-live marks and the push queue share the broker's command
  // connection (one node or Sentinel: push does not run on a Cluster yet).
  const pushParts = connected.publisher && createPushParts(config, connected.publisher, logger);
  const common = {
    broker,
    verifier,
    namer,
    limits: config.limits,
    corsOrigins: config.corsOrigins,
    corsLocalhost: config.corsLocalhost,
    production: config.production,
    introspection: config.introspection,
    shutdownDrainMs: config.shutdownDrainMs,
    logger,
    metrics,
  };
  // The example inbox page is a development aid: `npm start` builds and serves it; a
  // production server serves nothing but its API.
  const inboxPath = !config.production && mode !== 'publish' && existsSync(`${INBOX_DIRECTORY}/index.html`) ? INBOX_PATH : undefined;
  const subscribe =
    mode === 'publish'
      ? undefined
      : createSubscribeServer({
          ...common,
          connectionInitTimeoutMs: config.connectionInitTimeoutMs,
          keepAliveMs: config.keepAliveMs,
          playground: config.playground,
          pushStores: pushParts && { stores: pushParts, seenLive: pushParts.seenLive },
          ...(inboxPath ? { pages: [{ path: inboxPath, directory: INBOX_DIRECTORY }] } : {}),
          ...(devTokens ? { graphiqlHeaders: { Authorization: `Bearer ${devTokens.user.token}` } } : {}),
        });
  const publish = mode === 'subscribe' ? undefined : createPublishServer({ ...common, idempotencyWindowMs: config.idempotencyWindowMs, pushQueue: pushParts?.queue });
  const grpcCommon = {
    verifier,
    keepalive: config.grpcKeepalive,
    production: config.production,
    drainMs: config.shutdownDrainMs,
    isReady: () => broker.isReady(),
    logger,
  };
  const grpcFeed = subscribe && createFeedGrpcServer({ ...grpcCommon, subscriptions: subscribe.subscriptions, metrics });
  const metricsServer = config.metricsPort === undefined ? undefined : createMetricsServer(metrics.registry);
  const grpcPublish = publish && createPublishGrpcServer({ ...grpcCommon, sender: publish.sender });

  // Every server starts stopping at once (each answers /readyz with 503 from its first
  // step), lets what is in flight finish, and only then does the broker close.
  let pushWorker: RunningPushWorker | undefined;
  const stop = async (): Promise<void> => {
    await Promise.all([grpcFeed?.stop(), grpcPublish?.stop(), subscribe?.stop(), publish?.stop(), pushWorker?.stop()]);
    // The last deliveries' seen-live marks, before the command connection goes.
    await pushParts?.seenLive.flush();
    // Scraped until the servers have drained, so the last numbers can be read.
    await metricsServer?.stop();
    await broker.close();
    await Promise.all(clients.map((client) => client.quit().catch(() => client.disconnect())));
  };
  try {
    const redisReady = location === undefined || (await becomesReady(broker, REDIS_READY_WAIT_MS));
    if (location !== undefined && !redisReady) {
      // Serve anyway: in a container, Redis may come up later; readiness keeps traffic away until it does.
      logger.warn(
        `herald: ${location} is not reachable after ${REDIS_READY_WAIT_MS / 1000} s` +
          `${connected.lastRedisError() === undefined ? '' : ` (${connected.lastRedisError()})`}: check ${location.split(' ')[0]}; ` +
          'serving anyway, with /readyz 503 and gRPC health NOT_SERVING until Redis answers',
      );
    }
    /** Starts `server` (when this mode runs it) on `port`; a failure names `variable`. */
    const listenOn = async (server: HeraldServer | undefined, variable: string, port: number): Promise<number | undefined> => {
      try {
        return await server?.start(port, config.host);
      } catch (error) {
        throw listenFailure(variable, port, config.host, error);
      }
    };
    const subscribePort = await listenOn(subscribe, 'SUBSCRIBE_PORT', config.subscribePort);
    const publishPort = await listenOn(publish, 'PUBLISH_PORT', config.publishPort);
    const grpcPort = await listenOn(grpcFeed, 'GRPC_PORT', config.grpcPort);
    const publishGrpcPort = await listenOn(grpcPublish, 'PUBLISH_GRPC_PORT', config.publishGrpcPort);
    const metricsPort = metricsServer && (await listenForMetrics(metricsServer, config));
    // The development all-in-one runs the push worker too, when there is a Redis for it.
    // Not with Redis away: the worker would wait for it, and the servers must not.
    if (mode === 'all' && config.redisUrl !== undefined) {
      if (redisReady) {
        pushWorker = await startPushWorker(config, config.redisUrl, logger);
        metrics.pushWorker(pushWorker);
      }
      else logger.warn('herald: the push worker is not started: Redis is not reachable (run `npm run start:push` once it is)');
    }
    return { subscribePort, playground: config.playground, corsLocalhost: config.corsLocalhost, inboxPath, publishPort, grpcPort, publishGrpcPort, metricsPort, broker, devTokens, pushWorker, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
