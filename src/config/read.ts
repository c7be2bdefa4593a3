/**
 * Reads and checks Herald's environment once, at start-up. Every problem is collected
 * and reported together, so an operator fixes a bad deployment in one pass. Values and
 * defaults come from the settings table (./settings.ts); what is here is how settings
 * combine and the checks that span several.
 */
import { publicKey } from './jwt-key.js';
import { PUBLISHED_JWT_SECRETS } from './published-secrets.js';
import { readPushConfig } from './push-config.js';
import { checkRedisTopology, readRedisCluster, readRedisSentinel } from './redis-topology.js';
import { SettingsReader, type Env } from './settings-reader.js';
import type { HeraldConfig } from './types.js';

/** Thrown by {@link readConfig}; its message lists every bad variable. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
  }
}

/** Parses `env` into a {@link HeraldConfig}; throws {@link ConfigError} on any bad value. */
export function readConfig(env: Env = process.env): HeraldConfig {
  const problems: string[] = [];
  const production = env['NODE_ENV'] === 'production';
  const read = new SettingsReader(env, problems, production);

  const { jwtSecret, jwtPublicKey } = readJwtKey(read, production);
  const channelPrefix = read.value('CHANNEL_PREFIX');
  const host = read.value('HOST');
  const config: HeraldConfig = {
    redisUrl: read.value('REDIS_URL'),
    host,
    subscribePort: read.value('SUBSCRIBE_PORT'),
    publishPort: read.value('PUBLISH_PORT'),
    subscribeWorkers: read.value('SUBSCRIBE_WORKERS'),
    publishWorkers: read.value('PUBLISH_WORKERS'),
    metricsPort: read.value('METRICS_PORT'),
    metricsHost: read.value('METRICS_HOST') ?? host,
    logLevel: read.value('LOG_LEVEL'),
    grpcPort: read.value('GRPC_PORT'),
    publishGrpcPort: read.value('PUBLISH_GRPC_PORT'),
    grpcKeepalive: {
      timeMs: read.value('GRPC_KEEPALIVE_TIME_MS'),
      timeoutMs: read.value('GRPC_KEEPALIVE_TIMEOUT_MS'),
      minPingIntervalMs: read.value('GRPC_MIN_PING_INTERVAL_MS'),
      maxPingStrikes: read.value('GRPC_MAX_PING_STRIKES'),
    },
    jwtSecret,
    jwtPublicKey,
    corsOrigins: [...read.value('CORS_ORIGINS')],
    corsLocalhost: !production,
    channelPrefix,
    production,
    introspection: read.value('GRAPHQL_INTROSPECTION'),
    playground: read.value('PLAYGROUND'),
    connectionInitTimeoutMs: read.value('CONNECTION_INIT_TIMEOUT_MS'),
    keepAliveMs: read.value('KEEPALIVE_MS'),
    httpKeepAliveMs: read.value('HTTP_KEEPALIVE_MS'),
    deliveryAckTimeoutMs: read.value('DELIVERY_ACK_TIMEOUT_MS'),
    redisCommandTimeoutMs: read.value('REDIS_COMMAND_TIMEOUT_MS'),
    redisMinReplicasAcked: read.value('REDIS_MIN_REPLICAS_ACKED'),
    retention: {
      maxLength: read.value('HISTORY_MAX_LENGTH'),
      maxAgeMs: read.value('HISTORY_MAX_AGE_SECONDS') * 1000,
      ledgerMaxAgeMs: read.value('LEDGER_MAX_AGE_SECONDS') * 1000,
    },
    idempotencyWindowMs: read.value('IDEMPOTENCY_WINDOW_SECONDS') * 1000,
    ledgerMaxEvents: read.value('LEDGER_MAX_EVENTS'),
    preferencesMaxCategoriesPerUser: read.value('PREFERENCES_MAX_CATEGORIES_PER_USER'),
    shutdownDrainMs: read.value('SHUTDOWN_DRAIN_MS'),
    limits: {
      maxMessageBytes: read.value('MAX_MESSAGE_BYTES'),
      maxTextLength: read.value('MAX_TEXT_LENGTH'),
      maxSubscriptionsPerConnection: read.value('MAX_SUBSCRIPTIONS_PER_CONNECTION'),
      maxQueryDepth: read.value('MAX_QUERY_DEPTH'),
      maxQueryAliases: read.value('MAX_QUERY_ALIASES'),
      maxQueryTokens: read.value('MAX_QUERY_TOKENS'),
      maxBatchBytes: read.value('MAX_BATCH_BYTES'),
      maxQueuedNotifications: read.value('MAX_QUEUED_NOTIFICATIONS'),
      maxBufferedBytes: read.value('MAX_BUFFERED_BYTES'),
    },
    redisSentinel: readRedisSentinel(read),
    redisCluster: readRedisCluster(read),
    push: readPushConfig(read, production),
  };
  checkRedisTopology(read);
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/** `JWT_SECRET` or `JWT_PUBLIC_KEY`: exactly one, usable, and in production never a published one. */
function readJwtKey(read: SettingsReader, production: boolean): Pick<HeraldConfig, 'jwtSecret' | 'jwtPublicKey'> {
  const jwtSecret = read.value('JWT_SECRET');
  const jwtPublicKey = read.value('JWT_PUBLIC_KEY');
  const secretSet = read.isSet('JWT_SECRET');
  const keySet = read.isSet('JWT_PUBLIC_KEY');
  if (secretSet && keySet) read.problem('JWT_SECRET and JWT_PUBLIC_KEY are both set: set exactly one');
  if (jwtPublicKey !== undefined && !secretSet) {
    try {
      publicKey(jwtPublicKey);
    } catch (error) {
      read.problem(`JWT_PUBLIC_KEY is not a usable key: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  if (production && jwtSecret !== undefined && PUBLISHED_JWT_SECRETS.has(jwtSecret)) {
    read.problem(
      "JWT_SECRET is a value published in Herald's repository (.env.example or an old docker-compose.yml), so anyone can sign tokens with it: set a secret of your own, e.g. `openssl rand -base64 48`",
    );
  }
  if (production && !secretSet && !keySet) read.problem('NODE_ENV=production needs JWT_SECRET or JWT_PUBLIC_KEY (no dev secret is generated)');
  return { jwtSecret, jwtPublicKey };
}
