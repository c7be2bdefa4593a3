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
import { createPreferenceKeys } from '../preferences/keys.js';
import { createRedisPreferenceStore } from '../preferences/redis-store.js';
import { createMemoryPreferenceStore } from '../preferences/store.js';
import { connectRedis, connectShardSubscriber, redisLocation, type RedisSettings } from '../redis/connect.js';
import type { Broker } from '../broker/types.js';
import { createNamer, type Namer } from '../names/index.js';
import type { Logger } from '../common/logger.js';
import { listenFailure, StartupError } from '../common/startup.js';
import type { HeraldServer } from '../common/server.js';
import type { HeraldConfig } from '../config/index.js';
import { createFeedGrpcServer, createPublishGrpcServer } from './grpc.js';
import { createMetrics, type HeraldMetrics } from '../common/metrics.js';
import { createMetricsServer } from '../transports/metrics.js';
import { createPublishServer } from './publish.js';
import { createSubscribeServer } from './subscribe.js';
import { createPushParts } from '../push/index.js';
import { startPushWorker, type RunningPushWorker } from '../push/start.js';
import { createLedgerKeys } from '../ledger/keys.js';
import { createMemoryLedger } from '../ledger/memory-ledger.js';
import { createRedisLedger } from '../ledger/redis-ledger.js';
import type { LedgerCounts, LedgerStore } from '../ledger/store.js';
import { DELIVERY_PAGE_PATH } from '../transports/http/delivery-page.js';

export { redisLocation, startPushWorker, type RunningPushWorker };

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
  /** The ledger page's path on the publish server, when it serves it (development, with the ledger on). */
  readonly deliveryPath: string | undefined;
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
  /** The push worker this process runs: `push` mode, and `all` with Redis. */
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
export type BrokerSettings = RedisSettings &
  Pick<HeraldConfig, 'deliveryAckTimeoutMs' | 'retention'> &
  Partial<Pick<HeraldConfig, 'redisMinReplicasAcked'>> & {
    /** The ledger beside the broker (`LEDGER_MAX_EVENTS`, `CHANNEL_PREFIX`). @default none: no ledger */
    readonly ledger?: { readonly maxEvents: number; readonly channelPrefix: string } | undefined;
  };

export interface ConnectedBroker {
  readonly broker: Broker;
  /** The Redis broker's connections on one node or behind Sentinel (SUBSCRIBE only, and everything else); none in-process or on a Cluster. */
  readonly subscriber: Redis | undefined;
  readonly publisher: Redis | undefined;
  /** The Redis broker's command client on a Cluster (its shard subscribers are the broker's own). */
  readonly cluster: Cluster | undefined;
  /**
   * The ledger: in Redis on the broker's command client, or in memory beside the
   * in-process broker; none when `settings.ledger` is absent or its `maxEvents` 0.
   */
  readonly ledger: LedgerStore | undefined;
  /** ioredis' last connection error, to say why Redis is unreachable. */
  lastRedisError(): string | undefined;
  /** Closes the connections, after `broker.close()`. */
  closeConnections(): Promise<void>;
}

/**
 * The broker `settings` ask for: on Redis (two connections of its own made by
 * `connectRedis`, this process's own report channel), else in-process. Closing it
 * leaves the connections open: the caller closes them after `broker.close()`.
 * `redisOptions` are laid over Herald's own client options (tests reconnect faster).
 */
export function connectBroker(
  settings: BrokerSettings,
  namer: Namer,
  logger: Logger,
  redisOptions: RedisOptions = {},
  metrics?: Pick<HeraldMetrics, 'counts' | 'reportWait'>,
): ConnectedBroker {
  const ledgerSettings = settings.ledger !== undefined && settings.ledger.maxEvents > 0 ? settings.ledger : undefined;
  const counts: LedgerCounts | undefined = metrics?.counts;
  if (redisLocation(settings) === undefined) {
    const ledger = ledgerSettings && createMemoryLedger({ maxEvents: ledgerSettings.maxEvents, ttlMs: settings.retention.ledgerMaxAgeMs ?? settings.retention.maxAgeMs, ...(counts ? { counts } : {}) });
    const broker = createInProcessBroker({ retention: settings.retention, ledger });
    return { broker, ledger, subscriber: undefined, publisher: undefined, cluster: undefined, lastRedisError: () => undefined, closeConnections: async () => undefined };
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
  const publisher = connectRedis(settings, { name: 'herald-publisher', logger, overrides: redisOptions });
  // Batched appends on the command client; the publish script makes each timeline.
  const ledger =
    ledgerSettings &&
    createRedisLedger({ redis: publisher.client, keys: createLedgerKeys(ledgerSettings.channelPrefix), maxEvents: ledgerSettings.maxEvents, logger, ...(counts ? { counts } : {}) });
  if (publisher.client instanceof Cluster) {
    const broker = createRedisBroker({
      ...brokerOptions,
      publisher: publisher.client,
      subscriber: (node) => connectShardSubscriber(settings, node),
    });
    return { broker, ledger, subscriber: undefined, publisher: undefined, cluster: publisher.client, lastRedisError: publisher.lastError, closeConnections: publisher.close };
  }
  const subscriber = connectRedis(settings, { name: 'herald-subscriber', logger, overrides: redisOptions });
  const connections = [subscriber, publisher];
  const redisBroker = createRedisBroker({ ...brokerOptions, subscriber: subscriber.client as Redis, publisher: publisher.client });
  const broker: Broker = {
    ...redisBroker,
    close() {
      // Its owner quits the connections next: ioredis giving up on them is no reason to connect again.
      for (const connection of connections) connection.letGo();
      return redisBroker.close();
    },
  };
  return {
    broker,
    ledger,
    subscriber: subscriber.client as Redis,
    publisher: publisher.client as Redis,
    cluster: undefined,
    lastRedisError: publisher.lastError,
    closeConnections: async () => void (await Promise.all(connections.map((connection) => connection.close()))),
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

export interface StartOptions {
  /**
   * The dev secret, when neither `JWT_SECRET` nor `JWT_PUBLIC_KEY` is set: the worker
   * processes of one role share the one their primary made, so a sample token is good on
   * each of them. @default a new one, for this process alone
   */
  devSecret?: string | undefined;
}

export async function startHerald(config: HeraldConfig, mode: Mode, logger: Logger = console, options: StartOptions = {}): Promise<RunningHerald> {
  const location = redisLocation(config);
  if (mode !== 'all' && location === undefined) {
    throw new StartupError(
      mode === 'push'
        ? 'REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES is required to run the push worker'
        : `REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES is required to run the ${mode} server alone (only \`npm start\` may use the in-process broker)`,
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
      pushWorker = await startPushWorker(config, logger, pushMetrics.counts);
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
      deliveryPath: undefined,
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
  const devSecret = config.jwtSecret === undefined && config.jwtPublicKey === undefined ? (options.devSecret ?? generateDevSecret()) : undefined;
  // One registry for every server of this process; the process metrics only when someone scrapes them.
  const metrics = createMetrics({ role: mode, processMetrics: config.metricsPort !== undefined });
  const verifier = createTokenVerifier({ secret: config.jwtSecret ?? devSecret, publicKey: config.jwtPublicKey, onRefused: metrics.authRefused });
  const devTokens = devSecret === undefined ? undefined : signDevTokens(devSecret);
  const namer = createNamer(config.channelPrefix);

  const connected = connectBroker({ ...config, ledger: { maxEvents: config.ledgerMaxEvents, channelPrefix: config.channelPrefix } }, namer, logger, {}, metrics);
  const { broker, ledger } = connected;
  // Devices, topics, seen-live marks and the push queue share the broker's command client.
  const commandClient = connected.publisher ?? connected.cluster;
  const pushParts = commandClient && createPushParts(config, commandClient, logger);
  // One store for both servers: on the broker's Redis, or in this process's memory with the in-process broker.
  const preferences = commandClient
    ? createRedisPreferenceStore({ redis: commandClient, keys: createPreferenceKeys(config.channelPrefix), maxCategoriesPerUser: config.preferencesMaxCategoriesPerUser })
    : createMemoryPreferenceStore({ maxCategoriesPerUser: config.preferencesMaxCategoriesPerUser });
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
    httpKeepAliveMs: config.httpKeepAliveMs,
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
          ledger,
          preferences,
          ...(inboxPath ? { pages: [{ path: inboxPath, directory: INBOX_DIRECTORY }] } : {}),
          ...(devTokens ? { graphiqlHeaders: { Authorization: `Bearer ${devTokens.user.token}` } } : {}),
        });
  // The ledger page is a development aid too, pre-filled with the dev service token.
  const deliveryPath = !config.production && mode !== 'subscribe' && ledger !== undefined ? `${DELIVERY_PAGE_PATH}/` : undefined;
  const publish =
    mode === 'subscribe'
      ? undefined
      : createPublishServer({
          ...common,
          idempotencyWindowMs: config.idempotencyWindowMs,
          pushQueue: pushParts?.queue,
          preferences,
          ledger: ledger && { keys: createLedgerKeys(config.channelPrefix), reader: ledger },
          ...(deliveryPath ? { deliveryPage: { serviceToken: devTokens?.service.token } } : {}),
        });
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
    // The last deliveries' seen-live marks and ledger events, before the command connection goes.
    await Promise.all([pushParts?.seenLive.flush(), ledger?.flush()]);
    // Scraped until the servers have drained, so the last numbers can be read.
    await metricsServer?.stop();
    await broker.close();
    await connected.closeConnections();
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
    if (mode === 'all' && location !== undefined) {
      if (redisReady) {
        pushWorker = await startPushWorker(config, logger, metrics.counts);
        metrics.pushWorker(pushWorker);
      }
      else logger.warn('herald: the push worker is not started: Redis is not reachable (run `npm run start:push` once it is)');
    }
    return { subscribePort, playground: config.playground, corsLocalhost: config.corsLocalhost, inboxPath, publishPort, deliveryPath, grpcPort, publishGrpcPort, metricsPort, broker, devTokens, pushWorker, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
