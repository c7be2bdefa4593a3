/**
 * Runs Herald's servers in-process on port 0 for tests, each with its own broker (and,
 * with Redis, its own connections: two servers here are as separate as two processes).
 * Everything started is stopped by {@link stopAll}, which each file calls in `afterAll`.
 */
import type { LedgerStore } from '../../src/ledger/store.js';
import type { Cluster, Redis } from 'ioredis';
import { createTokenVerifier } from '../../src/auth/index.js';
import type { Broker } from '../../src/broker/types.js';
import { createNamer } from '../../src/names/index.js';
import type { Audience } from '../../src/common/notification.js';
import type { Logger } from '../../src/common/logger.js';
import { readConfig, type GrpcKeepalive, type HeraldConfig, type Limits, type Retention } from '../../src/config/index.js';
import { createFeedGrpcServer, createPublishGrpcServer } from '../../src/servers/grpc.js';
import { createMetrics, type HeraldMetrics } from '../../src/common/metrics.js';
import { connectBroker, type BrokerSettings } from '../../src/servers/herald.js';
import { createPublishServer, type PublishServer } from '../../src/servers/publish.js';
import { createSubscribeServer, type SubscribeServer } from '../../src/servers/subscribe.js';
import type { PageMount } from '../../src/transports/http/pages.js';
import { TEST_SECRET } from './tokens.js';
import { PATIENCE_MS } from './patience.js';

/** A logger that drops everything below `error`. */
export const quietLogger: Logger = {
  info: () => undefined,
  warn: () => undefined,
  error: (...args: unknown[]) => console.error(...args),
};

const stops: Array<() => Promise<void>> = [];

/** Stops every server and broker the helpers started, newest first. */
export async function stopAll(): Promise<void> {
  while (stops.length > 0) await stops.pop()?.();
}

/** Config's own defaults (development), as the servers get them from `readConfig`. */
export const DEFAULTS: HeraldConfig = readConfig({});
export const DEFAULT_LIMITS: Limits = DEFAULTS.limits;
export const PREFIX = 'herald';
const namer = createNamer(PREFIX);
/** The test servers' channel namer, plus a shorthand for a destination's channel. */
export const channels = {
  ...namer,
  audienceChannel: (tenant: string, audience: Audience, to: string): string => namer.destination(tenant, audience, to).channel,
};
export const verifier = createTokenVerifier({ secret: TEST_SECRET });

export interface TestBroker {
  readonly broker: Broker;
  /** The broker's Redis connections, if it has any. */
  readonly subscriber: Redis | undefined;
  readonly publisher: Redis | undefined;
  /** The command client on a Cluster (`settings.redisCluster`). */
  readonly cluster: Cluster | undefined;
  /** The ledger beside it, when `settings.ledger` asks for one. */
  readonly ledger: LedgerStore | undefined;
}

export interface TestBrokerOptions {
  /** How long a publish waits for delivery reports; generous, so a busy CI machine cannot cut a count short. @default 5000 */
  reportTimeoutMs?: number;
  retention?: Retention;
  /** Settings laid over the test's own (`redisSentinel`, `redisMinReplicasAcked`…). */
  settings?: Partial<BrokerSettings>;
}

/** A broker of its own: Redis (new connections) when `redisUrl`, `settings.redisSentinel` or `settings.redisCluster` is given, else in-process. */
export async function createTestBroker(redisUrl?: string, options: TestBrokerOptions = {}): Promise<TestBroker> {
  const retention = options.retention ?? DEFAULTS.retention;
  const settings = { redisUrl, redisCommandTimeoutMs: 1000, deliveryAckTimeoutMs: options.reportTimeoutMs ?? 5000, retention, ...options.settings };
  const { broker, subscriber, publisher, cluster, ledger } = connectBroker(settings, channels, quietLogger, { retryStrategy: () => 50 });
  stops.push(async () => {
    await broker.close();
    subscriber?.disconnect();
    publisher?.disconnect();
    cluster?.disconnect();
  });
  if (subscriber === undefined && publisher === undefined && cluster === undefined) return { broker, subscriber, publisher, cluster, ledger };
  await waitFor(() => broker.isReady(), 'the Redis broker to be ready', PATIENCE_MS);
  return { broker, subscriber, publisher, cluster, ledger };
}

export interface ServerOptions {
  limits?: Partial<Limits>;
  corsOrigins?: string[];
  connectionInitTimeoutMs?: number;
  keepAliveMs?: number;
  /** `HTTP_KEEPALIVE_MS`. @default its default */
  httpKeepAliveMs?: number;
  /** Production's defaults: masked errors, no suggestions, no introspection, no playground. @default false */
  production?: boolean;
  introspection?: boolean;
  playground?: boolean;
  /** @default quietLogger */
  logger?: Logger;
  /** The port to listen on (a restarted server takes its old one). @default 0 */
  port?: number;
  /** Static pages beside GraphQL (the inbox page). @default none */
  pages?: readonly PageMount[];
  /** Headers the playground starts with. @default none */
  graphiqlHeaders?: Record<string, string>;
  /** The server's metrics, for a test that reads its gauges (open WebSockets). @default a registry of its own */
  metrics?: HeraldMetrics;
}

/**
 * Config as `readConfig` makes it for {@link ServerOptions} (in production when asked:
 * masked errors, no introspection, no playground), with the options given on top.
 */
function configFor(options: ServerOptions): HeraldConfig {
  const config = options.production ? readConfig({ NODE_ENV: 'production', JWT_SECRET: TEST_SECRET }) : DEFAULTS;
  return {
    ...config,
    limits: { ...config.limits, ...options.limits },
    corsOrigins: options.corsOrigins ?? config.corsOrigins,
    connectionInitTimeoutMs: options.connectionInitTimeoutMs ?? config.connectionInitTimeoutMs,
    keepAliveMs: options.keepAliveMs ?? config.keepAliveMs,
    httpKeepAliveMs: options.httpKeepAliveMs ?? config.httpKeepAliveMs,
    introspection: options.introspection ?? config.introspection,
    playground: options.playground ?? config.playground,
  };
}

export interface RunningSubscribeServer {
  readonly server: SubscribeServer;
  readonly broker: Broker;
  readonly port: number;
  readonly httpUrl: string;
  readonly wsUrl: string;
  stop(): Promise<void>;
}

export async function startSubscribeServer(broker: Broker, options: ServerOptions = {}): Promise<RunningSubscribeServer> {
  const server = createSubscribeServer({
    ...configFor(options),
    broker,
    verifier,
    namer: channels,
    logger: options.logger ?? quietLogger,
    ...(options.pages ? { pages: options.pages } : {}),
    ...(options.graphiqlHeaders ? { graphiqlHeaders: options.graphiqlHeaders } : {}),
    metrics: options.metrics ?? createMetrics({ role: 'test', processMetrics: false }),
  });
  const port = await server.start(options.port ?? 0, '127.0.0.1');
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await server.stop();
  };
  stops.push(stop);
  return { server, broker, port, httpUrl: `http://127.0.0.1:${port}/graphql`, wsUrl: `ws://127.0.0.1:${port}/graphql`, stop };
}

export interface RunningPublishServer {
  readonly server: PublishServer;
  readonly broker: Broker;
  readonly port: number;
  readonly url: string;
  stop(): Promise<void>;
}

export async function startPublishServer(broker: Broker, options: ServerOptions = {}): Promise<RunningPublishServer> {
  const server = createPublishServer({ ...configFor(options), broker, verifier, namer: channels, logger: options.logger ?? quietLogger, metrics: createMetrics({ role: 'test', processMetrics: false }) });
  const port = await server.start(0, '127.0.0.1');
  const stop = (): Promise<void> => server.stop();
  stops.push(stop);
  return { server, broker, port, url: `http://127.0.0.1:${port}/graphql`, stop };
}

/** The gRPC feed beside `subscribe` (sharing its observer map), on port 0. */
export async function startGrpcFeed(subscribe: RunningSubscribeServer, keepalive: Partial<GrpcKeepalive> = {}) {
  const server = createFeedGrpcServer({
    subscriptions: subscribe.server.subscriptions,
    verifier,
    keepalive: { ...DEFAULTS.grpcKeepalive, ...keepalive },
    production: false,
    drainMs: DEFAULTS.shutdownDrainMs,
    isReady: () => subscribe.broker.isReady(),
    logger: quietLogger,
    metrics: createMetrics({ role: 'test', processMetrics: false }),
  });
  const port = await server.start(0, '127.0.0.1');
  stops.push(() => server.stop());
  return { port, stop: () => server.stop() };
}

/** The gRPC publisher beside `publish` (sharing its sender), on port 0. */
export async function startGrpcPublish(publish: RunningPublishServer) {
  const server = createPublishGrpcServer({
    sender: publish.server.sender,
    verifier,
    keepalive: DEFAULTS.grpcKeepalive,
    production: false,
    drainMs: DEFAULTS.shutdownDrainMs,
    isReady: () => publish.broker.isReady(),
    logger: quietLogger,
  });
  const port = await server.start(0, '127.0.0.1');
  stops.push(() => server.stop());
  return { port };
}

/** One subscribe and one publish server: on their own brokers with Redis, sharing one without. */
export async function startHeraldPair(redisUrl?: string, options: ServerOptions = {}) {
  const subscribeBroker = await createTestBroker(redisUrl);
  const publishBroker = redisUrl === undefined ? subscribeBroker : await createTestBroker(redisUrl);
  const subscribe = await startSubscribeServer(subscribeBroker.broker, options);
  const publish = await startPublishServer(publishBroker.broker, options);
  return { subscribe, publish, subscribeBroker, publishBroker };
}

/** Polls `condition` every 10 ms until it holds; fails after `timeoutMs` naming `what`. */
export async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = PATIENCE_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
