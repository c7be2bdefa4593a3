/**
 * Wires Herald from a {@link HeraldConfig}: the broker (Redis or in-process), the token
 * verifier and the servers a mode asks for. `main.ts` calls it; so can tests.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Redis, type RedisOptions } from 'ioredis';
import { createTokenVerifier, generateDevSecret } from './auth/index.js';
import { signDevTokens, type DevTokens } from './auth/dev-tokens.js';
import { createInProcessBroker } from './broker/in-process.js';
import { createRedisBroker, redisClientOptions } from './broker/redis.js';
import type { Broker } from './broker/types.js';
import { createNamer, type Namer } from './names/index.js';
import type { Logger } from './common/logger.js';
import { listenFailure, redactUrl, StartupError } from './common/startup.js';
import type { HeraldServer } from './common/server.js';
import type { HeraldConfig } from './config/index.js';
import { createFeedGrpcServer, createPublishGrpcServer } from './grpc/index.js';
import { createPublishServer } from './publish/server.js';
import { createSubscribeServer } from './subscribe/server.js';

/** Which servers one process runs. */
export type Mode = 'all' | 'subscribe' | 'publish';

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
  readonly broker: Broker;
  /** Sample tokens, in dev mode only (no `JWT_SECRET` nor `JWT_PUBLIC_KEY`). */
  readonly devTokens: DevTokens | undefined;
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
const INBOX_DIRECTORY = fileURLToPath(new URL('../examples/inbox/dist', import.meta.url));
const INBOX_PATH = '/inbox';

/** The settings a broker is made from. */
export type BrokerSettings = Pick<HeraldConfig, 'redisUrl' | 'redisCommandTimeoutMs' | 'deliveryAckTimeoutMs' | 'retention'>;

export interface ConnectedBroker {
  readonly broker: Broker;
  /** The Redis broker's connections (SUBSCRIBE only, and everything else); none in-process. */
  readonly subscriber: Redis | undefined;
  readonly publisher: Redis | undefined;
  /** ioredis' last connection error, to say why Redis is unreachable. */
  lastRedisError(): string | undefined;
}

/**
 * The broker `settings` ask for: on Redis (two connections of its own, this process's
 * own report channel) with `redisUrl`, else in-process. Closing it leaves the
 * connections open: the caller quits them after `broker.close()`. `redisOptions` are
 * laid over Herald's own client options (tests reconnect faster).
 */
export function connectBroker(settings: BrokerSettings, namer: Namer, logger: Logger, redisOptions: RedisOptions = {}): ConnectedBroker {
  if (settings.redisUrl === undefined) {
    return { broker: createInProcessBroker({ retention: settings.retention }), subscriber: undefined, publisher: undefined, lastRedisError: () => undefined };
  }
  const options = { ...redisClientOptions(settings.redisCommandTimeoutMs), ...redisOptions };
  const subscriber = new Redis(settings.redisUrl, { ...options, connectionName: 'herald-subscriber' });
  const publisher = new Redis(settings.redisUrl, { ...options, connectionName: 'herald-publisher' });
  let lastRedisError: string | undefined;
  publisher.on('error', (error: Error) => (lastRedisError = error.message));
  const broker = createRedisBroker({
    subscriber,
    publisher,
    reportChannel: namer.deliveryReportChannel(randomUUID()),
    reportTimeoutMs: settings.deliveryAckTimeoutMs,
    retention: settings.retention,
    logger,
  });
  return { broker, subscriber, publisher, lastRedisError: () => lastRedisError };
}

export async function startHerald(config: HeraldConfig, mode: Mode, logger: Logger = console): Promise<RunningHerald> {
  if (mode !== 'all' && config.redisUrl === undefined) {
    throw new StartupError(`REDIS_URL is required to run the ${mode} server alone (only \`npm start\` may use the in-process broker)`);
  }
  const devSecret = config.jwtSecret === undefined && config.jwtPublicKey === undefined ? generateDevSecret() : undefined;
  const verifier = createTokenVerifier({ secret: config.jwtSecret ?? devSecret, publicKey: config.jwtPublicKey });
  const devTokens = devSecret === undefined ? undefined : signDevTokens(devSecret);
  const namer = createNamer(config.channelPrefix);

  const connected = connectBroker(config, namer, logger);
  const { broker } = connected;
  const clients = [connected.subscriber, connected.publisher].filter((client): client is Redis => client !== undefined);

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
          ...(inboxPath ? { pages: [{ path: inboxPath, directory: INBOX_DIRECTORY }] } : {}),
          ...(devTokens ? { graphiqlHeaders: { Authorization: `Bearer ${devTokens.user.token}` } } : {}),
        });
  const publish = mode === 'subscribe' ? undefined : createPublishServer({ ...common, idempotencyWindowMs: config.idempotencyWindowMs });
  const grpcCommon = {
    verifier,
    keepalive: config.grpcKeepalive,
    production: config.production,
    drainMs: config.shutdownDrainMs,
    isReady: () => broker.isReady(),
    logger,
  };
  const grpcFeed = subscribe && createFeedGrpcServer({ ...grpcCommon, subscriptions: subscribe.subscriptions });
  const grpcPublish = publish && createPublishGrpcServer({ ...grpcCommon, sender: publish.sender });

  // Every server starts stopping at once (each answers /readyz with 503 from its first
  // step), lets what is in flight finish, and only then does the broker close.
  const stop = async (): Promise<void> => {
    await Promise.all([grpcFeed?.stop(), grpcPublish?.stop(), subscribe?.stop(), publish?.stop()]);
    await broker.close();
    await Promise.all(clients.map((client) => client.quit().catch(() => client.disconnect())));
  };
  try {
    if (config.redisUrl !== undefined && !(await becomesReady(broker, REDIS_READY_WAIT_MS))) {
      // Serve anyway: in a container, Redis may come up later; readiness keeps traffic away until it does.
      logger.warn(
        `herald: REDIS_URL ${redactUrl(config.redisUrl)} is not reachable after ${REDIS_READY_WAIT_MS / 1000} s` +
          `${connected.lastRedisError() === undefined ? '' : ` (${connected.lastRedisError()})`}: check REDIS_URL; ` +
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
    return { subscribePort, playground: config.playground, corsLocalhost: config.corsLocalhost, inboxPath, publishPort, grpcPort, publishGrpcPort, broker, devTokens, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
