/**
 * The configuration as the code uses it. Each field names the variable it is read from;
 * what that variable does, its default and its bounds are stated once, in the settings
 * table (./settings.ts, ./push-settings.ts), from which docs/configuration.md is made.
 */
import type { LogLevel } from '../common/structured-logger.js';
import type { CidrNetwork } from './networks.js';
import type { ApnsCredentials, ServiceAccountKey, VapidKeys } from './push.js';
import type { RedisAddress } from './setting.js';

/** How much history each stream keeps, and how long a notification's ledger is kept. */
export interface Retention {
  /** `HISTORY_MAX_LENGTH`. */
  maxLength: number;
  /** `HISTORY_MAX_AGE_SECONDS`, in ms. */
  maxAgeMs: number;
  /** `LEDGER_MAX_AGE_SECONDS`, in ms: the TTL a notification's ledger is made with. @default maxAgeMs */
  ledgerMaxAgeMs?: number;
}

/** The gRPC servers' keepalive policy (src/transports/grpc/ping-policy.ts). */
export interface GrpcKeepalive {
  /** `GRPC_KEEPALIVE_TIME_MS`. */
  timeMs: number;
  /** `GRPC_KEEPALIVE_TIMEOUT_MS`. */
  timeoutMs: number;
  /** `GRPC_MIN_PING_INTERVAL_MS`. */
  minPingIntervalMs: number;
  /** `GRPC_MAX_PING_STRIKES`. */
  maxPingStrikes: number;
}

/** Hard limits that protect a server from one client. */
export interface Limits {
  /** `MAX_MESSAGE_BYTES`. */
  maxMessageBytes: number;
  /** `MAX_TEXT_LENGTH`. */
  maxTextLength: number;
  /** `MAX_SUBSCRIPTIONS_PER_CONNECTION`. */
  maxSubscriptionsPerConnection: number;
  /** `MAX_QUERY_DEPTH`. */
  maxQueryDepth: number;
  /** `MAX_QUERY_ALIASES`. */
  maxQueryAliases: number;
  /** `MAX_QUERY_TOKENS`. */
  maxQueryTokens: number;
  /** `MAX_BATCH_BYTES`: the publish server's body limit for publishers (everyone else gets `maxMessageBytes`). */
  maxBatchBytes: number;
  /** `MAX_QUEUED_NOTIFICATIONS`: live notifications held back for one subscription while its history is read. */
  maxQueuedNotifications: number;
  /** `MAX_BUFFERED_BYTES`. */
  maxBufferedBytes: number;
}

/** Herald's configuration, read once at start-up by `readConfig`. */
export interface HeraldConfig {
  /** `REDIS_URL`; unset means the in-process broker (all-in-one mode only). */
  redisUrl: string | undefined;
  /** `HOST`. */
  host: string;
  /** `SUBSCRIBE_PORT`. */
  subscribePort: number;
  /** `PUBLISH_PORT`. */
  publishPort: number;
  /** `SUBSCRIBE_WORKERS`. */
  subscribeWorkers: number;
  /** `PUBLISH_WORKERS`. */
  publishWorkers: number;
  /** `METRICS_PORT`; undefined: no metrics server. */
  metricsPort: number | undefined;
  /** `METRICS_HOST`, else `HOST`. */
  metricsHost: string;
  /** `LOG_LEVEL`. */
  logLevel: LogLevel;
  /** `GRPC_PORT`. */
  grpcPort: number;
  /** `PUBLISH_GRPC_PORT`. */
  publishGrpcPort: number;
  grpcKeepalive: GrpcKeepalive;
  /** `JWT_SECRET`. */
  jwtSecret: string | undefined;
  /** `JWT_PUBLIC_KEY`, its `\n` escapes turned into newlines. */
  jwtPublicKey: string | undefined;
  /** `CORS_ORIGINS`. */
  corsOrigins: string[];
  /**
   * Whether any `http://localhost:<port>` and `http://127.0.0.1:<port>` origin is allowed
   * too, so a page on a local dev server talks to `npm start` without setup: outside
   * production only, where only `CORS_ORIGINS` counts.
   */
  corsLocalhost: boolean;
  /** `CHANNEL_PREFIX`. */
  channelPrefix: string;
  /** `NODE_ENV === 'production'`. */
  production: boolean;
  /** `GRAPHQL_INTROSPECTION`. */
  introspection: boolean;
  /** `PLAYGROUND`. */
  playground: boolean;
  /** `CONNECTION_INIT_TIMEOUT_MS`. */
  connectionInitTimeoutMs: number;
  /** `KEEPALIVE_MS`. */
  keepAliveMs: number;
  /** `HTTP_KEEPALIVE_MS`. */
  httpKeepAliveMs: number;
  /** `DELIVERY_ACK_TIMEOUT_MS`. */
  deliveryAckTimeoutMs: number;
  /** `REDIS_COMMAND_TIMEOUT_MS`. */
  redisCommandTimeoutMs: number;
  /** `REDIS_MIN_REPLICAS_ACKED`; 0: no `WAIT`. */
  redisMinReplicasAcked: number;
  retention: Retention;
  /** `SHUTDOWN_DRAIN_MS`. */
  shutdownDrainMs: number;
  /** `IDEMPOTENCY_WINDOW_SECONDS`, in ms. */
  idempotencyWindowMs: number;
  /** `LEDGER_MAX_EVENTS`: events kept per notification; 0: no ledger. */
  ledgerMaxEvents: number;
  /** `PREFERENCES_MAX_CATEGORIES_PER_USER`. */
  preferencesMaxCategoriesPerUser: number;
  limits: Limits;
  /** `REDIS_SENTINELS` and the variables that go with it; undefined: no Sentinel. */
  redisSentinel: RedisSentinelSettings | undefined;
  /** `REDIS_CLUSTER_NODES` and `REDIS_PASSWORD`; undefined: no Cluster. */
  redisCluster: RedisClusterSettings | undefined;
  push: PushConfig;
}

/** The push settings (`PUSH_*`). */
export interface PushConfig {
  /**
   * Everything but the final send: the worker logs what it would send and FCM gets
   * `validate_only`. True outside production (`NODE_ENV`).
   */
  dryRun: boolean;
  /** `PUSH_CONCURRENCY`. */
  concurrency: number;
  /** `PUSH_TENANT_CONCURRENCY`, else a quarter of `concurrency` (at least 1). */
  tenantConcurrency: number;
  /** `PUSH_DESTINATION_CONCURRENCY`. */
  destinationConcurrency: number;
  /** `PUSH_BREAKER_FAILURES`. */
  breakerFailures: number;
  /** `PUSH_BREAKER_COOLDOWN_MS`. */
  breakerCooldownMs: number;
  /** `PUSH_MAX_ATTEMPTS`. */
  maxAttempts: number;
  /** `PUSH_CLAIM_IDLE_MS`, longer than `sendTimeoutMs`. */
  claimIdleMs: number;
  /** `PUSH_OFFLINE_GRACE_MS`. */
  offlineGraceMs: number;
  /** `PUSH_SEEN_LIVE_TTL_MS`. */
  seenLiveTtlMs: number;
  /** `PUSH_SEND_TIMEOUT_MS`. */
  sendTimeoutMs: number;
  /** `PUSH_RETRY_WINDOW_MS`, shorter than `dedupTtlMs`. */
  retryWindowMs: number;
  /** `PUSH_RETRY_POLL_MS`. */
  retryPollMs: number;
  /** `PUSH_RETRY_MAX_MS`. */
  retryMaxMs: number;
  /** `PUSH_MAX_DEVICES_PER_USER`. */
  maxDevicesPerUser: number;
  /** `PUSH_MAX_TOPICS_PER_USER`. */
  maxTopicsPerUser: number;
  /** `PUSH_FANOUT_PAGE_SIZE`. */
  fanoutPageSize: number;
  /** `PUSH_STREAM_MAX_LENGTH`. */
  streamMaxLength: number;
  /** `PUSH_DEAD_LETTER_MAX_LENGTH`. */
  deadLetterMaxLength: number;
  /** `PUSH_DEDUP_TTL_SECONDS`, in ms. */
  dedupTtlMs: number;
  /** `PUSH_LOG_SUMMARY_MS` (0: no summary). */
  summaryMs: number;
  /** `PUSH_FCM_SERVICE_ACCOUNT_FILE` (read), `PUSH_FCM_URL`, `PUSH_FCM_TOKEN_URL`; undefined: FCM is not configured. */
  fcm: { serviceAccount: ServiceAccountKey; url: string; tokenUrl: string } | undefined;
  /** `PUSH_APNS_*` (the key read and checked); undefined: APNs is not configured. */
  apns: { credentials: ApnsCredentials; url: string } | undefined;
  /** `PUSH_VAPID_SUBJECT`, `PUSH_VAPID_PUBLIC_KEY`, `PUSH_VAPID_PRIVATE_KEY`; undefined: Web Push is not configured. */
  vapid: VapidKeys | undefined;
  /** `PUSH_WEBHOOK_SECRET`; undefined: webhooks are not configured. */
  webhookSecret: string | undefined;
  /** `PUSH_ALLOWED_NETWORKS`. */
  allowedNetworks: readonly CidrNetwork[];
}

/** Redis through Sentinel (`REDIS_SENTINELS`): a master that fails over to its replica. */
export interface RedisSentinelSettings {
  /** `REDIS_SENTINELS`: asked in order for the current master's address. */
  readonly sentinels: readonly RedisAddress[];
  /** `REDIS_SENTINEL_MASTER`. */
  readonly masterName: string;
  /** `REDIS_SENTINEL_PASSWORD`. */
  readonly sentinelPassword: string | undefined;
  /** `REDIS_PASSWORD`. */
  readonly password: string | undefined;
}

/** A Redis Cluster (`REDIS_CLUSTER_NODES`): sharded Pub/Sub, so masters added add Pub/Sub capacity. */
export interface RedisClusterSettings {
  /** `REDIS_CLUSTER_NODES`: seed nodes; the rest of the cluster is discovered from them. */
  readonly nodes: readonly RedisAddress[];
  /** `REDIS_PASSWORD`. */
  readonly password: string | undefined;
}
