/**
 * Reads and checks Herald's environment once, at start-up. Every problem is collected
 * and reported together, so an operator fixes a bad deployment in one pass.
 */
import { LOG_LEVELS, type LogLevel } from '../common/structured-logger.js';
import { isValidName } from '../names/index.js';
import { publicKey } from './jwt-key.js';
import { PUBLISHED_JWT_SECRETS } from './published-secrets.js';
import { readFileSync } from 'node:fs';
import { FCM_URL, GOOGLE_TOKEN_URL, parseServiceAccountKey, type ServiceAccountKey, type VapidKeys } from './push.js';
import { parseCidr, type CidrNetwork } from './networks.js';

export { LOG_LEVELS, type LogLevel };
export type { CidrNetwork };

/** How much history each stream keeps. */
export interface Retention {
  /**
   * `HISTORY_MAX_LENGTH`: entries kept per stream (per user, store or company); older
   * ones are trimmed.
   * @default 1000
   */
  maxLength: number;
  /**
   * `HISTORY_MAX_AGE_SECONDS`: age after which an entry is trimmed, and idle time after
   * which a whole stream expires; kept here in ms.
   * @default 604800 (7 days)
   */
  maxAgeMs: number;
}

/** The gRPC servers' keepalive policy. */
export interface GrpcKeepalive {
  /**
   * `GRPC_KEEPALIVE_TIME_MS`: how often the server pings a client's connection to learn
   * that it is still there.
   * @default 30000 (ms)
   */
  timeMs: number;
  /**
   * `GRPC_KEEPALIVE_TIMEOUT_MS`: how long a ping may go unanswered before the connection
   * (and every stream on it) is closed.
   * @default 10000 (ms)
   */
  timeoutMs: number;
  /**
   * `GRPC_MIN_PING_INTERVAL_MS`: the shortest interval at which a client may ping while
   * the server sends it nothing. Pings sooner than this are strikes; headers or data sent
   * on the connection forgive them (src/transports/grpc/ping-policy.ts).
   * @default 10000 (ms)
   */
  minPingIntervalMs: number;
  /**
   * `GRPC_MAX_PING_STRIKES`: strikes in a row tolerated; one more and the client gets
   * GOAWAY `too_many_pings`.
   * @default 2
   */
  maxPingStrikes: number;
}

/** Hard limits that protect a server from one client. */
export interface Limits {
  /**
   * Largest WebSocket message or HTTP request body accepted, in bytes. A bigger
   * WebSocket frame closes the socket with 1009; a bigger body gets HTTP 413.
   * @default 65536
   */
  maxMessageBytes: number;
  /**
   * Longest notification `text`, in characters. Longer is a `BAD_USER_INPUT` error.
   * @default 2000
   */
  maxTextLength: number;
  /**
   * How many subscriptions one WebSocket connection may hold at once. One more is a
   * `LIMIT_EXCEEDED` error on that subscription; the connection stays open.
   * @default 10
   */
  maxSubscriptionsPerConnection: number;
  /**
   * Deepest selection set accepted, counted in fields. Deeper is a validation error.
   * @default 8
   */
  maxQueryDepth: number;
  /**
   * Most aliases in one operation, `__typename` ones included. More is a validation error.
   * @default 10
   */
  maxQueryAliases: number;
  /**
   * Most lexical tokens (names, punctuation, values; comments aside) in one GraphQL
   * document. The parser stops at the first token past it, with a `LIMIT_EXCEEDED`
   * error, so no document costs more than a few milliseconds to parse and validate:
   * at 1000, the worst shapes measured (bench/documents.ts) take under 3 ms. Herald's
   * own operations take 10–60 tokens and GraphiQL's schema query about 180; a batch's
   * notifications go in variables, which do not count.
   * @default 1000
   */
  maxQueryTokens: number;
  /**
   * Largest HTTP request body the publish server reads from a client whose token
   * carries the `notifications:publish` scope, in bytes (everyone else gets
   * `maxMessageBytes`): room for a full batch, 1000 notifications of `MAX_TEXT_LENGTH`
   * characters (2000 by default, up to 3 UTF-8 bytes each) in variables. A bigger body
   * gets HTTP 413 before any of it is read.
   * @default 8388608 (8 MiB)
   */
  maxBatchBytes: number;
  /**
   * How many notifications may wait for one slow subscriber before its subscription
   * ends with a `LIMIT_EXCEEDED` error (nothing is dropped silently).
   * @default 1000
   */
  maxQueuedNotifications: number;
  /**
   * Bytes that may wait to be sent on one WebSocket before the client is closed as too
   * slow (close code 4413); the others never wait for it.
   * @default 1048576
   */
  maxBufferedBytes: number;
}

export interface HeraldConfig {
  /** `REDIS_URL`; unset means the in-process broker (all-in-one mode only). */
  redisUrl: string | undefined;
  /** `HOST`: the address both servers listen on. @default '0.0.0.0' */
  host: string;
  /** `SUBSCRIBE_PORT`. @default 4000 */
  subscribePort: number;
  /** `PUBLISH_PORT`. @default 4001 */
  publishPort: number;
  /**
   * `SUBSCRIBE_WORKERS`: processes the subscribe server runs, sharing its ports (one per
   * core takes a machine past one process's file-descriptor limit).
   * @default 1
   */
  subscribeWorkers: number;
  /**
   * `METRICS_PORT`: the internal port that serves Prometheus' text format at
   * `GET /metrics` (never the public ports, which answer `/metrics` with 404).
   * @default undefined (no metrics server)
   */
  metricsPort: number | undefined;
  /**
   * `METRICS_HOST`: the address the metrics port listens on, for every role (subscribe,
   * publish, push), e.g. `127.0.0.1` to keep `/metrics` off the network while `HOST`
   * stays public.
   * @default the value of `HOST`
   */
  metricsHost: string;
  /**
   * `LOG_LEVEL` (`fatal`, `error`, `warn`, `info`, `debug`, `trace`): the lowest level
   * written. Anything else is a start-up error.
   * @default 'info'
   */
  logLevel: LogLevel;
  /** `GRPC_PORT`: the subscribe server's gRPC `Feed`. @default 4002 */
  grpcPort: number;
  /** `PUBLISH_GRPC_PORT`: the publish server's gRPC `Send`. @default 4003 */
  publishGrpcPort: number;
  /** The gRPC servers' keepalive policy; see {@link GrpcKeepalive}. */
  grpcKeepalive: GrpcKeepalive;
  /** `JWT_SECRET`: HS256 secret. */
  jwtSecret: string | undefined;
  /** `JWT_PUBLIC_KEY`: PEM of an RSA (RS256) or EC P-256 (ES256) public key. */
  jwtPublicKey: string | undefined;
  /** `CORS_ORIGINS`: exact origins allowed besides the server's own. @default [] */
  corsOrigins: string[];
  /**
   * Whether any `http://localhost:<port>` and `http://127.0.0.1:<port>` origin is allowed
   * too, so a page on a local dev server talks to `npm start` without setup. Never in
   * production, where only `CORS_ORIGINS` counts.
   * @default true, false with `NODE_ENV=production`
   */
  corsLocalhost: boolean;
  /** `CHANNEL_PREFIX`: prefix of every Redis key and channel. @default 'herald' */
  channelPrefix: string;
  /** `NODE_ENV === 'production'`: no generated secrets, no internal error messages. */
  production: boolean;
  /**
   * `GRAPHQL_INTROSPECTION` (`on` or `off`): whether `__schema` and `__type` may be
   * queried. Off, they are a `FORBIDDEN` validation error.
   * @default on in development, off in production
   */
  introspection: boolean;
  /**
   * `PLAYGROUND` (`on` or `off`): whether the subscribe server serves GraphiQL to a
   * browser on `GET /graphql`. GraphiQL reads the schema by introspection, so in
   * production it also needs `GRAPHQL_INTROSPECTION=on`.
   * @default on in development, off in production
   */
  playground: boolean;
  /**
   * `CONNECTION_INIT_TIMEOUT_MS`: how long a WebSocket may stay open without
   * `connection_init` before it is closed with 4408.
   * @default 3000
   */
  connectionInitTimeoutMs: number;
  /**
   * `KEEPALIVE_MS`: interval of WebSocket pings; a socket that does not answer one
   * within the same interval is terminated and its subscriptions released.
   * @default 12000
   */
  keepAliveMs: number;
  /**
   * `DELIVERY_ACK_TIMEOUT_MS`: how long `sendNotification` waits for the subscribe
   * servers that received a notification to report how many subscriptions it reached.
   * @default 1000
   */
  deliveryAckTimeoutMs: number;
  /**
   * `REDIS_COMMAND_TIMEOUT_MS`: a Redis command not answered within this fails, so no
   * request hangs on a half-open connection; a connection whose PING (sent every
   * second) is not answered within it is closed and opened again (`redis/liveness.ts`).
   * @default 2000
   */
  redisCommandTimeoutMs: number;
  /**
   * `REDIS_MIN_REPLICAS_ACKED`: after the publish script, Herald sends `WAIT <n> <t>`
   * with `t` half of `REDIS_COMMAND_TIMEOUT_MS` (so Redis answers before the command
   * times out); when fewer than this many replicas acknowledged the write in time, the mutation fails with `OUTCOME_UNKNOWN` (the notification is
   * stored on the master and was delivered live, but may not survive a failover). With
   * Sentinel, a success then means the notification is on the master and on `n` replicas.
   * @default 0 (no wait: a success means the master stored it)
   */
  redisMinReplicasAcked: number;
  /** How much history each stream keeps; see {@link Retention}. */
  retention: Retention;
  /**
   * `SHUTDOWN_DRAIN_MS`: on SIGTERM, how long requests in flight (mutations, queries,
   * gRPC calls) may take to finish before their connections are cut. `/readyz` answers
   * 503 from the signal on.
   * @default 10000
   */
  shutdownDrainMs: number;
  /**
   * `IDEMPOTENCY_WINDOW_SECONDS`: how long a publisher's `idempotencyKey` is remembered.
   * @default 600 (10 minutes), kept here in ms
   */
  idempotencyWindowMs: number;
  limits: Limits;
  /**
   * `REDIS_SENTINELS` (comma-separated `host:port` sentinels), `REDIS_SENTINEL_MASTER`
   * (the name they monitor the master under), optional `REDIS_SENTINEL_PASSWORD` (the
   * sentinels' own) and `REDIS_PASSWORD` (the master's and replicas'): Redis found
   * through Sentinel, instead of `REDIS_URL`.
   * @default undefined (no Sentinel)
   */
  redisSentinel: RedisSentinelSettings | undefined;
  /**
   * `REDIS_CLUSTER_NODES` (comma-separated `host:port` seed nodes) and optional
   * `REDIS_PASSWORD`: a Redis Cluster, instead of `REDIS_URL`. The seeds only start
   * discovery; the client learns every node from them.
   * @default undefined (no Cluster)
   */
  redisCluster: RedisClusterSettings | undefined;
  /** The push worker's settings (`PUSH_*`). */
  push: PushConfig;
}

/** The push worker's settings, read from `PUSH_*` variables. */
export interface PushConfig {
  /**
   * Everything but the final send: outside production the worker logs what it would send
   * and FCM gets `validate_only`. Only `NODE_ENV=production` sends for real.
   * @default true outside production, false in production
   */
  dryRun: boolean;
  /** `PUSH_CONCURRENCY`: most sends in flight per worker. @default 256 */
  concurrency: number;
  /**
   * `PUSH_TENANT_CONCURRENCY`: most sends in flight for one tenant, and most of its
   * entries a worker works on at once, so one tenant's slow or dead endpoints cannot hold
   * the whole worker. At most `PUSH_CONCURRENCY`.
   * @default a quarter of `PUSH_CONCURRENCY` (64), at least 1
   */
  tenantConcurrency: number;
  /**
   * `PUSH_DESTINATION_CONCURRENCY`: most sends in flight to one destination (the origin of
   * a webhook URL or Web Push endpoint, within one tenant; FCM has none) — the most
   * connections a receiver that never answers can hold.
   * @default 32
   */
  destinationConcurrency: number;
  /**
   * `PUSH_BREAKER_FAILURES`: sends in a row to one destination with no answer (a network
   * error, a timeout) or a 5xx that open its circuit: sends to it then fail at once and
   * are retried per `PUSH_MAX_ATTEMPTS` and the retry waits, never dropped.
   * @default 5
   */
  breakerFailures: number;
  /**
   * `PUSH_BREAKER_COOLDOWN_MS`: how long an open circuit fails sends at once before it
   * lets one probe through; the probe's answer closes it, its failure opens it again.
   * @default 30000 (ms)
   */
  breakerCooldownMs: number;
  /** `PUSH_MAX_ATTEMPTS`: attempts per push before it is dead-lettered. @default 5 */
  maxAttempts: number;
  /**
   * `PUSH_CLAIM_IDLE_MS`: an entry idle this long belongs to a dead worker and is taken
   * over; must exceed `PUSH_SEND_TIMEOUT_MS`.
   * @default 30000
   */
  claimIdleMs: number;
  /** `PUSH_OFFLINE_GRACE_MS`: wait after publication before deciding who is offline (`WHEN_OFFLINE`). @default 2000 */
  offlineGraceMs: number;
  /** `PUSH_SEEN_LIVE_TTL_MS`: life of a subscribe server's seen-live mark. @default 300000 */
  seenLiveTtlMs: number;
  /** `PUSH_SEND_TIMEOUT_MS`: a send not answered within this is retried. @default 10000 */
  sendTimeoutMs: number;
  /** `PUSH_RETRY_BASE_MS`: first retry wait, doubled per attempt, with jitter. @default 1000 */
  retryBaseMs: number;
  /** `PUSH_RETRY_MAX_MS`: longest retry wait; a longer Retry-After dead-letters at once. @default 300000 */
  retryMaxMs: number;
  /** `PUSH_MAX_DEVICES_PER_USER`. @default 10 */
  maxDevicesPerUser: number;
  /** `PUSH_MAX_TOPICS_PER_USER`. @default 1000 */
  maxTopicsPerUser: number;
  /** `PUSH_FANOUT_PAGE_SIZE`: followers per page a topic is split into. @default 500 */
  fanoutPageSize: number;
  /** `PUSH_STREAM_MAX_LENGTH`: about the most entries waiting in the push stream. @default 1000000 */
  streamMaxLength: number;
  /** `PUSH_DEAD_LETTER_MAX_LENGTH`: about the most dead letters kept. @default 100000 */
  deadLetterMaxLength: number;
  /** `PUSH_DEDUP_TTL_SECONDS` (kept in ms): life of a per-(notification, device) send marker. @default 86400 (24 hours) */
  dedupTtlMs: number;
  /**
   * `PUSH_FCM_SERVICE_ACCOUNT_FILE` (a service-account key JSON file, read at start-up),
   * `PUSH_FCM_URL` (default https://fcm.googleapis.com) and `PUSH_FCM_TOKEN_URL` (default
   * https://oauth2.googleapis.com/token). Unset file: FCM is not configured.
   */
  fcm: { serviceAccount: ServiceAccountKey; url: string; tokenUrl: string } | undefined;
  /** `PUSH_VAPID_SUBJECT`, `PUSH_VAPID_PUBLIC_KEY`, `PUSH_VAPID_PRIVATE_KEY`, all or none. Unset: Web Push is not configured. */
  vapid: VapidKeys | undefined;
  /** `PUSH_WEBHOOK_SECRET`: `whsec_` and a base64 key of at least 24 bytes. Unset: webhooks are not configured. */
  webhookSecret: string | undefined;
  /**
   * `PUSH_ALLOWED_NETWORKS`: comma-separated CIDRs (`10.20.0.0/16`, `fd00:1::/48`; a bare
   * address is one host) that webhook URLs, Web Push endpoints and the FCM endpoint may
   * connect to although they are internal. Every other loopback, private, link-local or
   * special-purpose address is refused, at registration and on every address the worker
   * connects to. A bad entry stops start-up naming it.
   * @default [] (nothing internal is reachable)
   */
  allowedNetworks: readonly CidrNetwork[];
}

/** Thrown by {@link readConfig}; its message lists every bad variable. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
  }
}

type Env = Record<string, string | undefined>;

/** Parses `env` into a {@link HeraldConfig}; throws {@link ConfigError} on any bad value. */
export function readConfig(env: Env = process.env): HeraldConfig {
  const problems: string[] = [];
  const read = new EnvReader(env, problems);
  const production = env['NODE_ENV'] === 'production';

  const jwtSecret = read.string('JWT_SECRET');
  const jwtPublicKey = read.string('JWT_PUBLIC_KEY')?.replace(/\\n/g, '\n');
  if (jwtSecret !== undefined && jwtPublicKey !== undefined) {
    problems.push('JWT_SECRET and JWT_PUBLIC_KEY are both set: set exactly one');
  }
  if (jwtPublicKey !== undefined && jwtSecret === undefined) {
    try {
      publicKey(jwtPublicKey);
    } catch (error) {
      problems.push(`JWT_PUBLIC_KEY is not a usable key: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  if (jwtSecret !== undefined && Buffer.byteLength(jwtSecret) < 32) {
    problems.push('JWT_SECRET must be at least 32 bytes long');
  }
  if (production && jwtSecret !== undefined && PUBLISHED_JWT_SECRETS.has(jwtSecret)) {
    problems.push(
      "JWT_SECRET is a value published in Herald's repository (.env.example or an old docker-compose.yml), so anyone can sign tokens with it: set a secret of your own, e.g. `openssl rand -base64 48`",
    );
  }
  if (production && jwtSecret === undefined && jwtPublicKey === undefined) {
    problems.push('NODE_ENV=production needs JWT_SECRET or JWT_PUBLIC_KEY (no dev secret is generated)');
  }

  const channelPrefix = read.string('CHANNEL_PREFIX') ?? 'herald';
  if (!isValidName(channelPrefix)) {
    problems.push(`CHANNEL_PREFIX "${channelPrefix}" may only hold letters, digits, '.', '_', '-' and '@'`);
  }

  const host = read.string('HOST') ?? '0.0.0.0';
  const config: HeraldConfig = {
    redisUrl: read.redisUrl('REDIS_URL'),
    host,
    subscribePort: read.integer('SUBSCRIBE_PORT', 4000, 0, 65535),
    publishPort: read.integer('PUBLISH_PORT', 4001, 0, 65535),
    subscribeWorkers: read.integer('SUBSCRIBE_WORKERS', 1, 1, 256),
    metricsPort: read.string('METRICS_PORT') === undefined ? undefined : read.integer('METRICS_PORT', 0, 0, 65535),
    metricsHost: read.string('METRICS_HOST') ?? host,
    logLevel: read.logLevel('LOG_LEVEL'),
    grpcPort: read.integer('GRPC_PORT', 4002, 0, 65535),
    publishGrpcPort: read.integer('PUBLISH_GRPC_PORT', 4003, 0, 65535),
    grpcKeepalive: {
      timeMs: read.integer('GRPC_KEEPALIVE_TIME_MS', 30_000, 10, 24 * 3600 * 1000),
      timeoutMs: read.integer('GRPC_KEEPALIVE_TIMEOUT_MS', 10_000, 10, 3600 * 1000),
      minPingIntervalMs: read.integer('GRPC_MIN_PING_INTERVAL_MS', 10_000, 0, 24 * 3600 * 1000),
      maxPingStrikes: read.integer('GRPC_MAX_PING_STRIKES', 2, 0, 1000),
    },
    jwtSecret,
    jwtPublicKey,
    corsOrigins: read.origins('CORS_ORIGINS'),
    corsLocalhost: !production,
    channelPrefix,
    production,
    introspection: read.toggle('GRAPHQL_INTROSPECTION', !production),
    playground: read.toggle('PLAYGROUND', !production),
    connectionInitTimeoutMs: read.integer('CONNECTION_INIT_TIMEOUT_MS', 3000, 1, 60_000),
    keepAliveMs: read.integer('KEEPALIVE_MS', 12_000, 1, 600_000),
    deliveryAckTimeoutMs: read.integer('DELIVERY_ACK_TIMEOUT_MS', 1000, 1, 60_000),
    redisCommandTimeoutMs: read.integer('REDIS_COMMAND_TIMEOUT_MS', 2000, 1, 60_000),
    redisMinReplicasAcked: read.integer('REDIS_MIN_REPLICAS_ACKED', 0, 0, 100),
    retention: {
      maxLength: read.integer('HISTORY_MAX_LENGTH', 1000, 1, 1_000_000),
      maxAgeMs: read.integer('HISTORY_MAX_AGE_SECONDS', 7 * 24 * 3600, 1, 365 * 24 * 3600) * 1000,
    },
    idempotencyWindowMs: read.integer('IDEMPOTENCY_WINDOW_SECONDS', 600, 1, 7 * 24 * 3600) * 1000,
    shutdownDrainMs: read.integer('SHUTDOWN_DRAIN_MS', 10_000, 0, 600_000),
    limits: {
      maxMessageBytes: read.integer('MAX_MESSAGE_BYTES', 65_536, 1024, 16 * 1024 * 1024),
      maxTextLength: read.integer('MAX_TEXT_LENGTH', 2000, 1, 1_000_000),
      maxSubscriptionsPerConnection: read.integer('MAX_SUBSCRIPTIONS_PER_CONNECTION', 10, 1, 1000),
      maxQueryDepth: read.integer('MAX_QUERY_DEPTH', 8, 2, 100),
      maxQueryAliases: read.integer('MAX_QUERY_ALIASES', 10, 0, 1000),
      maxQueryTokens: read.integer('MAX_QUERY_TOKENS', 1000, 100, 100_000),
      maxBatchBytes: read.integer('MAX_BATCH_BYTES', 8 * 1024 * 1024, 1024, 256 * 1024 * 1024),
      maxQueuedNotifications: read.integer('MAX_QUEUED_NOTIFICATIONS', 1000, 1, 1_000_000),
      maxBufferedBytes: read.integer('MAX_BUFFERED_BYTES', 1_048_576, 1024, 1024 * 1024 * 1024),
    },
    redisSentinel: read.redisSentinel(),
    redisCluster: read.redisCluster(),
    push: readPushConfig(read, production, problems),
  };
  const redisChoices = REDIS_TOPOLOGY_VARIABLES.filter((name) => read.string(name) !== undefined);
  if (redisChoices.length > 1) {
    problems.push(`${redisChoices.join(' and ')} are set: set at most one of REDIS_URL, REDIS_SENTINELS and REDIS_CLUSTER_NODES (each says how to reach Redis)`);
  }
  if (read.string('REDIS_PASSWORD') !== undefined && read.string('REDIS_SENTINELS') === undefined && read.string('REDIS_CLUSTER_NODES') === undefined) {
    problems.push('REDIS_PASSWORD is used only with REDIS_SENTINELS or REDIS_CLUSTER_NODES (with REDIS_URL, put it in the URL: redis://:password@host:port)');
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

function readPushConfig(read: EnvReader, production: boolean, problems: string[]): PushConfig {
  const sendTimeoutMs = read.integer('PUSH_SEND_TIMEOUT_MS', 10_000, 100, 600_000);
  const claimIdleMs = read.integer('PUSH_CLAIM_IDLE_MS', 30_000, 100, 24 * 3600 * 1000);
  if (claimIdleMs <= sendTimeoutMs) {
    problems.push(`PUSH_CLAIM_IDLE_MS (${claimIdleMs}) must be longer than PUSH_SEND_TIMEOUT_MS (${sendTimeoutMs}), or live workers' entries are taken over`);
  }
  const concurrency = read.integer('PUSH_CONCURRENCY', 256, 1, 100_000);
  const tenantConcurrency = read.integer('PUSH_TENANT_CONCURRENCY', Math.max(1, Math.floor(concurrency / 4)), 1, 100_000);
  if (tenantConcurrency > concurrency) {
    problems.push(`PUSH_TENANT_CONCURRENCY (${tenantConcurrency}) must not exceed PUSH_CONCURRENCY (${concurrency})`);
  }
  return {
    dryRun: !production,
    concurrency,
    tenantConcurrency,
    destinationConcurrency: read.integer('PUSH_DESTINATION_CONCURRENCY', 32, 1, 100_000),
    breakerFailures: read.integer('PUSH_BREAKER_FAILURES', 5, 1, 1000),
    breakerCooldownMs: read.integer('PUSH_BREAKER_COOLDOWN_MS', 30_000, 100, 3600 * 1000),
    maxAttempts: read.integer('PUSH_MAX_ATTEMPTS', 5, 1, 100),
    claimIdleMs,
    offlineGraceMs: read.integer('PUSH_OFFLINE_GRACE_MS', 2000, 0, 600_000),
    seenLiveTtlMs: read.integer('PUSH_SEEN_LIVE_TTL_MS', 300_000, 1000, 24 * 3600 * 1000),
    sendTimeoutMs,
    retryBaseMs: read.integer('PUSH_RETRY_BASE_MS', 1000, 1, 3600 * 1000),
    retryMaxMs: read.integer('PUSH_RETRY_MAX_MS', 300_000, 1, 24 * 3600 * 1000),
    maxDevicesPerUser: read.integer('PUSH_MAX_DEVICES_PER_USER', 10, 1, 1000),
    maxTopicsPerUser: read.integer('PUSH_MAX_TOPICS_PER_USER', 1000, 1, 1_000_000),
    fanoutPageSize: read.integer('PUSH_FANOUT_PAGE_SIZE', 500, 1, 100_000),
    streamMaxLength: read.integer('PUSH_STREAM_MAX_LENGTH', 1_000_000, 100, 1_000_000_000),
    deadLetterMaxLength: read.integer('PUSH_DEAD_LETTER_MAX_LENGTH', 100_000, 100, 1_000_000_000),
    dedupTtlMs: read.integer('PUSH_DEDUP_TTL_SECONDS', 86_400, 60, 30 * 24 * 3600) * 1000,
    fcm: readFcm(read, problems),
    vapid: readVapid(read, problems),
    webhookSecret: readWebhookSecret(read, problems),
    allowedNetworks: read.networks('PUSH_ALLOWED_NETWORKS'),
  };
}

function readFcm(read: EnvReader, problems: string[]): PushConfig['fcm'] {
  const url = read.httpUrl('PUSH_FCM_URL') ?? FCM_URL;
  const tokenUrl = read.httpUrl('PUSH_FCM_TOKEN_URL') ?? GOOGLE_TOKEN_URL;
  const file = read.string('PUSH_FCM_SERVICE_ACCOUNT_FILE');
  if (file === undefined) return undefined;
  let json: string;
  try {
    json = readFileSync(file, 'utf8');
  } catch (error) {
    problems.push(`PUSH_FCM_SERVICE_ACCOUNT_FILE "${file}" cannot be read: ${error instanceof Error ? error.message : String(error)}`);
    return undefined;
  }
  try {
    return { serviceAccount: parseServiceAccountKey(json), url, tokenUrl };
  } catch (error) {
    problems.push(`PUSH_FCM_SERVICE_ACCOUNT_FILE "${file}" ${error instanceof Error ? error.message : String(error)}`);
    return undefined;
  }
}

function readVapid(read: EnvReader, problems: string[]): VapidKeys | undefined {
  const subject = read.string('PUSH_VAPID_SUBJECT');
  const publicKey = read.string('PUSH_VAPID_PUBLIC_KEY');
  const privateKey = read.string('PUSH_VAPID_PRIVATE_KEY');
  const set = [subject, publicKey, privateKey].filter((value) => value !== undefined).length;
  if (set === 0) return undefined;
  if (subject === undefined || publicKey === undefined || privateKey === undefined) {
    problems.push('PUSH_VAPID_SUBJECT, PUSH_VAPID_PUBLIC_KEY and PUSH_VAPID_PRIVATE_KEY must be set together (or none of them)');
    return undefined;
  }
  let ok = true;
  if (!/^(mailto:|https:\/\/)/.test(subject)) {
    problems.push(`PUSH_VAPID_SUBJECT "${subject}" must be a mailto: or https:// URL`);
    ok = false;
  }
  if (base64urlBytes(publicKey) !== 65) {
    problems.push('PUSH_VAPID_PUBLIC_KEY must be a base64url uncompressed P-256 public key (65 bytes)');
    ok = false;
  }
  if (base64urlBytes(privateKey) !== 32) {
    problems.push('PUSH_VAPID_PRIVATE_KEY must be a base64url P-256 private key (32 bytes)');
    ok = false;
  }
  return ok ? { subject, publicKey, privateKey } : undefined;
}

function readWebhookSecret(read: EnvReader, problems: string[]): string | undefined {
  const secret = read.string('PUSH_WEBHOOK_SECRET');
  if (secret === undefined) return undefined;
  const key = secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : undefined;
  if (key === undefined || !/^[A-Za-z0-9+/]+={0,2}$/.test(key) || Buffer.from(key, 'base64').length < 24) {
    problems.push('PUSH_WEBHOOK_SECRET must be whsec_ followed by a base64 key of at least 24 bytes (Standard Webhooks)');
    return undefined;
  }
  return secret;
}

/** Bytes of a base64url string, or -1 if it is not one. */
function base64urlBytes(value: string): number {
  return /^[A-Za-z0-9_-]+={0,2}$/.test(value) ? Buffer.from(value, 'base64url').length : -1;
}

class EnvReader {
  constructor(
    private readonly env: Env,
    private readonly problems: string[],
  ) {}

  string(name: string): string | undefined {
    const value = this.env[name]?.trim();
    return value === undefined || value === '' ? undefined : value;
  }

  integer(name: string, fallback: number, min: number, max: number): number {
    const raw = this.string(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!/^\d+$/.test(raw) || value < min || value > max) {
      this.problems.push(`${name} "${raw}" must be a whole number from ${min} to ${max}`);
      return fallback;
    }
    return value;
  }

  /** One of {@link LOG_LEVELS}, any case. */
  logLevel(name: string): LogLevel {
    const raw = this.string(name);
    if (raw === undefined) return 'info';
    const level = LOG_LEVELS.find((candidate) => candidate === raw.toLowerCase());
    if (level === undefined) this.problems.push(`${name} "${raw}" must be one of ${LOG_LEVELS.join(', ')}`);
    return level ?? 'info';
  }

  /** `on` or `off`, any case. */
  toggle(name: string, fallback: boolean): boolean {
    const raw = this.string(name);
    if (raw === undefined) return fallback;
    switch (raw.toLowerCase()) {
      case 'on':
        return true;
      case 'off':
        return false;
      default:
        this.problems.push(`${name} "${raw}" must be on or off`);
        return fallback;
    }
  }

  /** An http:// or https:// URL without a trailing slash. */
  httpUrl(name: string): string | undefined {
    const raw = this.string(name);
    if (raw === undefined) return undefined;
    try {
      const url = new URL(raw);
      if (url.protocol === 'http:' || url.protocol === 'https:') return raw.replace(/\/+$/, '');
    } catch {
      // reported below
    }
    this.problems.push(`${name} "${raw}" must be an http:// or https:// URL`);
    return undefined;
  }

  redisUrl(name: string): string | undefined {
    const raw = this.string(name);
    if (raw === undefined) return undefined;
    try {
      const url = new URL(raw);
      if (url.protocol === 'redis:' || url.protocol === 'rediss:') return raw;
    } catch {
      // reported below
    }
    this.problems.push(`${name} "${raw}" must look like redis://host:port (or rediss:// for TLS)`);
    return undefined;
  }

  /** `REDIS_SENTINELS` and the variables that only mean something with it. */
  redisSentinel(): RedisSentinelSettings | undefined {
    const sentinels = this.addresses('REDIS_SENTINELS');
    const masterName = this.string('REDIS_SENTINEL_MASTER');
    const sentinelPassword = this.string('REDIS_SENTINEL_PASSWORD');
    if (this.string('REDIS_SENTINELS') === undefined) {
      for (const name of ['REDIS_SENTINEL_MASTER', 'REDIS_SENTINEL_PASSWORD']) {
        if (this.string(name) !== undefined) this.problems.push(`${name} is set but REDIS_SENTINELS is not: list the sentinels as host:port,host:port`);
      }
      return undefined;
    }
    if (masterName === undefined) {
      this.problems.push('REDIS_SENTINELS needs REDIS_SENTINEL_MASTER: the name the sentinels monitor the master under');
      return undefined;
    }
    if (/\s/.test(masterName)) {
      this.problems.push(`REDIS_SENTINEL_MASTER "${masterName}" must not contain spaces (Sentinel master names are one word)`);
      return undefined;
    }
    if (sentinels === undefined) return undefined;
    return { sentinels, masterName, sentinelPassword, password: this.string('REDIS_PASSWORD') };
  }

  /** `REDIS_CLUSTER_NODES`, with `REDIS_PASSWORD`. */
  redisCluster(): RedisClusterSettings | undefined {
    const nodes = this.addresses('REDIS_CLUSTER_NODES');
    return nodes === undefined ? undefined : { nodes, password: this.string('REDIS_PASSWORD') };
  }

  /** Comma-separated `host:port` (`[v6]:port` for IPv6); undefined when unset or any entry is bad. */
  addresses(name: string): RedisAddress[] | undefined {
    const raw = this.string(name);
    if (raw === undefined) return undefined;
    const entries = raw.split(',').map((part) => part.trim()).filter(Boolean);
    const addresses: RedisAddress[] = [];
    for (const entry of entries) {
      const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9][A-Za-z0-9.-]*)):(\d{1,5})$/.exec(entry);
      const host = match?.[1] ?? match?.[2];
      const port = Number(match?.[3]);
      if (host === undefined || port < 1 || port > 65535) {
        this.problems.push(`${name} entry "${entry}" must be host:port, such as 10.0.0.5:26379 or [fd00::5]:26379`);
      } else {
        addresses.push({ host, port });
      }
    }
    if (entries.length === 0) this.problems.push(`${name} lists no host:port`);
    return addresses.length === entries.length && entries.length > 0 ? addresses : undefined;
  }

  /** Comma-separated CIDRs; each bad entry is a problem naming it. */
  networks(name: string): CidrNetwork[] {
    const raw = this.string(name);
    if (raw === undefined) return [];
    const networks: CidrNetwork[] = [];
    for (const entry of raw.split(',').map((part) => part.trim()).filter(Boolean)) {
      try {
        networks.push(parseCidr(entry));
      } catch (error) {
        this.problems.push(`${name} entry ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    return networks;
  }

  origins(name: string): string[] {
    const raw = this.string(name);
    if (raw === undefined) return [];
    const origins: string[] = [];
    for (const entry of raw.split(',').map((part) => part.trim()).filter(Boolean)) {
      let origin: string | undefined;
      try {
        origin = new URL(entry).origin;
      } catch {
        origin = undefined;
      }
      if (origin === undefined || origin === 'null' || origin !== entry.replace(/\/$/, '')) {
        this.problems.push(`${name} entry "${entry}" must be an exact origin such as https://app.example.com (no wildcard, no path)`);
      } else {
        origins.push(origin);
      }
    }
    return origins;
  }
}

/** The variables that each choose how Herald reaches Redis; at most one may be set. */
const REDIS_TOPOLOGY_VARIABLES = ['REDIS_URL', 'REDIS_SENTINELS', 'REDIS_CLUSTER_NODES'] as const;

/** A Redis node or sentinel, from a `host:port` list. */
export interface RedisAddress {
  readonly host: string;
  readonly port: number;
}

/** Redis through Sentinel (`REDIS_SENTINELS`): a master that fails over to its replica. */
export interface RedisSentinelSettings {
  /** `REDIS_SENTINELS`: asked in order for the current master's address. */
  readonly sentinels: readonly RedisAddress[];
  /** `REDIS_SENTINEL_MASTER`: the name the sentinels monitor the master under. */
  readonly masterName: string;
  /** `REDIS_SENTINEL_PASSWORD`: the sentinels' own password. @default undefined (none) */
  readonly sentinelPassword: string | undefined;
  /** `REDIS_PASSWORD`: the master's and replicas' password. @default undefined (none) */
  readonly password: string | undefined;
}

/** A Redis Cluster (`REDIS_CLUSTER_NODES`): sharded Pub/Sub, so masters added add Pub/Sub capacity. */
export interface RedisClusterSettings {
  /** `REDIS_CLUSTER_NODES`: seed nodes; the rest of the cluster is discovered from them. */
  readonly nodes: readonly RedisAddress[];
  /** `REDIS_PASSWORD`: every node's password. @default undefined (none) */
  readonly password: string | undefined;
}
