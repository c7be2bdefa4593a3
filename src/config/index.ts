/**
 * Reads and checks Herald's environment once, at start-up. Every problem is collected
 * and reported together, so an operator fixes a bad deployment in one pass.
 */
import { createTokenVerifier } from '../auth/tokens.js';
import type { Retention } from '../broker/types.js';
import type { GrpcKeepalive } from '../grpc/server.js';
import { isValidName } from '../channels/index.js';
import { PUBLISHED_JWT_SECRETS } from './published-secrets.js';

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
  /** `GRPC_PORT`: the subscribe server's gRPC `Feed`. @default 4002 */
  grpcPort: number;
  /** `PUBLISH_GRPC_PORT`: the publish server's gRPC `Send`. @default 4003 */
  publishGrpcPort: number;
  /**
   * `GRPC_KEEPALIVE_TIME_MS` (server pings, default 30000), `GRPC_KEEPALIVE_TIMEOUT_MS`
   * (unanswered ping drops the connection, default 10000), `GRPC_MIN_PING_INTERVAL_MS`
   * (fastest a client may ping, default 10000) and `GRPC_MAX_PING_STRIKES` (default 2).
   */
  grpcKeepalive: GrpcKeepalive;
  /** `JWT_SECRET`: HS256 secret. */
  jwtSecret: string | undefined;
  /** `JWT_PUBLIC_KEY`: PEM of an RSA (RS256) or EC P-256 (ES256) public key. */
  jwtPublicKey: string | undefined;
  /** `CORS_ORIGINS`: exact origins allowed besides the server's own. @default [] */
  corsOrigins: string[];
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
   * request hangs on a half-open connection.
   * @default 2000
   */
  redisCommandTimeoutMs: number;
  /**
   * `HISTORY_MAX_LENGTH` (entries per user, store or company stream; default 1000) and
   * `HISTORY_MAX_AGE_SECONDS` (age of an entry, and idle time of a stream, before it is
   * dropped; default 604800 = 7 days).
   */
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
      createTokenVerifier({ publicKey: jwtPublicKey });
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

  const config: HeraldConfig = {
    redisUrl: read.redisUrl('REDIS_URL'),
    host: read.string('HOST') ?? '0.0.0.0',
    subscribePort: read.integer('SUBSCRIBE_PORT', 4000, 0, 65535),
    publishPort: read.integer('PUBLISH_PORT', 4001, 0, 65535),
    subscribeWorkers: read.integer('SUBSCRIBE_WORKERS', 1, 1, 256),
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
    channelPrefix,
    production,
    introspection: read.toggle('GRAPHQL_INTROSPECTION', !production),
    playground: read.toggle('PLAYGROUND', !production),
    connectionInitTimeoutMs: read.integer('CONNECTION_INIT_TIMEOUT_MS', 3000, 1, 60_000),
    keepAliveMs: read.integer('KEEPALIVE_MS', 12_000, 1, 600_000),
    deliveryAckTimeoutMs: read.integer('DELIVERY_ACK_TIMEOUT_MS', 1000, 1, 60_000),
    redisCommandTimeoutMs: read.integer('REDIS_COMMAND_TIMEOUT_MS', 2000, 1, 60_000),
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

/** Redis through Sentinel (`REDIS_SENTINELS`, issue 15). */
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

/** A Redis Cluster (`REDIS_CLUSTER_NODES`, issue 15). */
export interface RedisClusterSettings {
  /** `REDIS_CLUSTER_NODES`: seed nodes; the rest of the cluster is discovered from them. */
  readonly nodes: readonly RedisAddress[];
  /** `REDIS_PASSWORD`: every node's password. @default undefined (none) */
  readonly password: string | undefined;
}
