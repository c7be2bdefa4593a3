/**
 * readConfig: defaults, and every bad variable reported by name, all at once.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, readConfig } from '../../src/config/index.js';
import { publicKey } from '../../src/config/jwt-key.js';
import { PUBLISHED_JWT_SECRETS } from '../../src/config/published-secrets.js';
import { TEST_SECRET } from '../support/tokens.js';

const LONG_SECRET = 'x'.repeat(32);

const PUSH_DEFAULTS = {
  dryRun: true,
  concurrency: 256,
  tenantConcurrency: 64,
  destinationConcurrency: 32,
  breakerFailures: 5,
  breakerCooldownMs: 30_000,
  maxAttempts: 8,
  claimIdleMs: 30_000,
  offlineGraceMs: 2000,
  seenLiveTtlMs: 300_000,
  sendTimeoutMs: 10_000,
  retryWindowMs: 1_800_000,
  retryPollMs: 1000,
  retryMaxMs: 1_800_000,
  maxDevicesPerUser: 10,
  maxTopicsPerUser: 1000,
  fanoutPageSize: 500,
  streamMaxLength: 1_000_000,
  deadLetterMaxLength: 100_000,
  dedupTtlMs: 86_400_000,
  summaryMs: 60_000,
  fcm: undefined,
  vapid: undefined,
  webhookSecret: undefined,
  allowedNetworks: [],
};

/** The problems `readConfig(env)` reports; fails the test if it accepts `env`. */
function problemsOf(env: Record<string, string | undefined>): string[] {
  try {
    readConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    const { problems, message } = error as ConfigError;
    for (const problem of problems) expect(message).toContain(problem);
    return problems;
  }
  throw new Error(`readConfig accepted ${JSON.stringify(env)}`);
}

describe('readConfig', () => {
  it('has defaults for everything', () => {
    expect(readConfig({})).toEqual({
      redisUrl: undefined,
      host: '0.0.0.0',
      subscribePort: 4000,
      publishPort: 4001,
      subscribeWorkers: 1,
      publishWorkers: 1,
      metricsPort: undefined,
      metricsHost: '0.0.0.0',
      logLevel: 'info',
      grpcPort: 4002,
      publishGrpcPort: 4003,
      grpcKeepalive: { timeMs: 30_000, timeoutMs: 10_000, minPingIntervalMs: 10_000, maxPingStrikes: 2 },
      jwtSecret: undefined,
      jwtPublicKey: undefined,
      corsOrigins: [],
      corsLocalhost: true,
      channelPrefix: 'herald',
      production: false,
      introspection: true,
      playground: true,
      connectionInitTimeoutMs: 3000,
      keepAliveMs: 12_000,
      httpKeepAliveMs: 72_000,
      deliveryAckTimeoutMs: 1000,
      redisCommandTimeoutMs: 2000,
      redisMinReplicasAcked: 0,
      retention: { maxLength: 1000, maxAgeMs: 7 * 24 * 3600 * 1000, ledgerMaxAgeMs: 24 * 3600 * 1000 },
      idempotencyWindowMs: 600_000,
      ledgerMaxEvents: 200,
      preferencesMaxCategoriesPerUser: 100,
      shutdownDrainMs: 10_000,
      limits: {
        maxMessageBytes: 65_536,
        maxTextLength: 2000,
        maxSubscriptionsPerConnection: 10,
        maxQueryDepth: 8,
        maxQueryAliases: 10,
        maxQueryTokens: 1000,
        maxBatchBytes: 8 * 1024 * 1024,
        maxQueuedNotifications: 1000,
        maxBufferedBytes: 1_048_576,
      },
      redisSentinel: undefined,
      redisCluster: undefined,
      push: PUSH_DEFAULTS,
    });
  });

  it('reads good values, trimmed; an empty variable counts as unset', () => {
    const config = readConfig({
      SUBSCRIBE_PORT: ' 5000 ',
      PUBLISH_PORT: '0',
      REDIS_URL: 'rediss://cache.internal:6380/2',
      CHANNEL_PREFIX: 'herald-staging',
      JWT_SECRET: LONG_SECRET,
      HOST: '',
      NODE_ENV: 'production',
    });
    expect(config).toMatchObject({
      subscribePort: 5000,
      publishPort: 0,
      redisUrl: 'rediss://cache.internal:6380/2',
      channelPrefix: 'herald-staging',
      jwtSecret: LONG_SECRET,
      host: '0.0.0.0',
      production: true,
      corsLocalhost: false, // only CORS_ORIGINS in production
    });
  });

  it.each<[string, Record<string, string>, string]>([
    ['SUBSCRIBE_PORT', { SUBSCRIBE_PORT: 'abc' }, 'SUBSCRIBE_PORT "abc" must be a whole number from 0 to 65535'],
    ['SUBSCRIBE_PORT', { SUBSCRIBE_PORT: '-1' }, 'SUBSCRIBE_PORT "-1" must be a whole number from 0 to 65535'],
    ['SUBSCRIBE_PORT', { SUBSCRIBE_PORT: '4000.5' }, 'SUBSCRIBE_PORT "4000.5" must be a whole number from 0 to 65535'],
    ['PUBLISH_PORT', { PUBLISH_PORT: '70000' }, 'PUBLISH_PORT "70000" must be a whole number from 0 to 65535'],
    ['SHUTDOWN_DRAIN_MS', { SHUTDOWN_DRAIN_MS: '10s' }, 'SHUTDOWN_DRAIN_MS "10s" must be a whole number from 0 to 600000'],
    ['REDIS_URL', { REDIS_URL: 'http://x' }, 'REDIS_URL "http://x" must look like redis://host:port (or rediss:// for TLS)'],
    ['REDIS_URL', { REDIS_URL: 'localhost:7777' }, 'REDIS_URL "localhost:7777" must look like redis://host:port (or rediss:// for TLS)'],
    [
      'CORS_ORIGINS',
      { CORS_ORIGINS: '*' },
      'CORS_ORIGINS entry "*" must be an exact origin such as https://app.example.com (no wildcard, no path)',
    ],
    [
      'CORS_ORIGINS',
      { CORS_ORIGINS: 'https://app.example.com/admin' },
      'CORS_ORIGINS entry "https://app.example.com/admin" must be an exact origin such as https://app.example.com (no wildcard, no path)',
    ],
    [
      'CHANNEL_PREFIX',
      { CHANNEL_PREFIX: 'herald:prod' },
      `CHANNEL_PREFIX "herald:prod" may only hold letters, digits, '.', '_', '-' and '@'`,
    ],
    ['JWT_SECRET', { JWT_SECRET: 'x'.repeat(31) }, 'JWT_SECRET must be at least 32 bytes long'],
    ['JWT_SECRET', { JWT_SECRET: 'é'.repeat(15) }, 'JWT_SECRET must be at least 32 bytes long'],
    [
      'JWT_SECRET',
      { JWT_SECRET: LONG_SECRET, JWT_PUBLIC_KEY: '-----BEGIN PUBLIC KEY-----' },
      'JWT_SECRET and JWT_PUBLIC_KEY are both set: set exactly one',
    ],
    ['MAX_QUERY_TOKENS', { MAX_QUERY_TOKENS: '50' }, 'MAX_QUERY_TOKENS "50" must be a whole number from 100 to 100000'],
    ['MAX_BATCH_BYTES', { MAX_BATCH_BYTES: '1e6' }, 'MAX_BATCH_BYTES "1e6" must be a whole number from 1024 to 268435456'],
    ['GRAPHQL_INTROSPECTION', { GRAPHQL_INTROSPECTION: 'yes' }, 'GRAPHQL_INTROSPECTION "yes" must be on or off'],
    ['PLAYGROUND', { PLAYGROUND: '1' }, 'PLAYGROUND "1" must be on or off'],
    [
      'NODE_ENV',
      { NODE_ENV: 'production' },
      'NODE_ENV=production needs JWT_SECRET or JWT_PUBLIC_KEY (no dev secret is generated)',
    ],
  ])('reports bad %s: %j', (variable, env, problem) => {
    const problems = problemsOf(env);
    expect(problems).toEqual([problem]);
    expect(problems[0]).toContain(variable);
  });

  it('reads REDIS_SENTINELS, REDIS_SENTINEL_MASTER and both passwords', () => {
    const config = readConfig({
      REDIS_SENTINELS: ' sentinel-1:26379, 10.0.0.7:26380 ,[fd00::5]:26381',
      REDIS_SENTINEL_MASTER: 'herald-main',
      REDIS_SENTINEL_PASSWORD: 'sentinel-secret',
      REDIS_PASSWORD: 'data-secret',
    });
    expect(config.redisSentinel).toEqual({
      sentinels: [
        { host: 'sentinel-1', port: 26379 },
        { host: '10.0.0.7', port: 26380 },
        { host: 'fd00::5', port: 26381 },
      ],
      masterName: 'herald-main',
      sentinelPassword: 'sentinel-secret',
      password: 'data-secret',
    });
    expect(config).toMatchObject({ redisUrl: undefined, redisCluster: undefined });
    expect(readConfig({ REDIS_SENTINELS: 's:26379', REDIS_SENTINEL_MASTER: 'm' }).redisSentinel).toEqual({
      sentinels: [{ host: 's', port: 26379 }],
      masterName: 'm',
      sentinelPassword: undefined,
      password: undefined,
    });
  });

  it('reads REDIS_MIN_REPLICAS_ACKED (0, no WAIT, when unset) and refuses a negative count', () => {
    expect(readConfig({ REDIS_MIN_REPLICAS_ACKED: '2' }).redisMinReplicasAcked).toBe(2);
    expect(readConfig({}).redisMinReplicasAcked).toBe(0);
    expect(() => readConfig({ REDIS_MIN_REPLICAS_ACKED: '-1' })).toThrow(/REDIS_MIN_REPLICAS_ACKED/);
  });

  it('reads REDIS_CLUSTER_NODES and REDIS_PASSWORD', () => {
    const config = readConfig({ REDIS_CLUSTER_NODES: 'redis-0:6379,redis-1:6379', REDIS_PASSWORD: 'data-secret' });
    expect(config.redisCluster).toEqual({
      nodes: [
        { host: 'redis-0', port: 6379 },
        { host: 'redis-1', port: 6379 },
      ],
      password: 'data-secret',
    });
    expect(config).toMatchObject({ redisUrl: undefined, redisSentinel: undefined });
  });

  it.each<[Record<string, string>, string[]]>([
    [
      { REDIS_URL: 'redis://a:6379', REDIS_SENTINELS: 's:26379', REDIS_SENTINEL_MASTER: 'm' },
      ['REDIS_URL and REDIS_SENTINELS are set: set at most one of REDIS_URL, REDIS_SENTINELS and REDIS_CLUSTER_NODES (each says how to reach Redis)'],
    ],
    [
      { REDIS_URL: 'redis://a:6379', REDIS_SENTINELS: 's:26379', REDIS_SENTINEL_MASTER: 'm', REDIS_CLUSTER_NODES: 'c:6379' },
      [
        'REDIS_URL and REDIS_SENTINELS and REDIS_CLUSTER_NODES are set: set at most one of REDIS_URL, REDIS_SENTINELS and REDIS_CLUSTER_NODES (each says how to reach Redis)',
      ],
    ],
    [
      { REDIS_SENTINELS: 's:26379', REDIS_SENTINEL_MASTER: 'm', REDIS_CLUSTER_NODES: 'c:6379' },
      ['REDIS_SENTINELS and REDIS_CLUSTER_NODES are set: set at most one of REDIS_URL, REDIS_SENTINELS and REDIS_CLUSTER_NODES (each says how to reach Redis)'],
    ],
    [{ REDIS_SENTINELS: 's:26379' }, ['REDIS_SENTINELS needs REDIS_SENTINEL_MASTER: the name the sentinels monitor the master under']],
    [
      { REDIS_SENTINELS: 's:26379', REDIS_SENTINEL_MASTER: 'my master' },
      ['REDIS_SENTINEL_MASTER "my master" must not contain spaces (Sentinel master names are one word)'],
    ],
    [
      { REDIS_SENTINEL_MASTER: 'm', REDIS_SENTINEL_PASSWORD: 'p' },
      [
        'REDIS_SENTINEL_MASTER is set but REDIS_SENTINELS is not: list the sentinels as host:port,host:port',
        'REDIS_SENTINEL_PASSWORD is set but REDIS_SENTINELS is not: list the sentinels as host:port,host:port',
      ],
    ],
    [
      { REDIS_SENTINELS: 's:26379,sentinel-2,:1,s:0,s:65536,s:2x', REDIS_SENTINEL_MASTER: 'm' },
      ['sentinel-2', ':1', 's:0', 's:65536', 's:2x'].map(
        (entry) => `REDIS_SENTINELS entry "${entry}" must be host:port, such as 10.0.0.5:26379 or [fd00::5]:26379`,
      ),
    ],
    [{ REDIS_CLUSTER_NODES: ' , ' }, ['REDIS_CLUSTER_NODES lists no host:port']],
    [
      { REDIS_CLUSTER_NODES: 'redis://c:6379' },
      ['REDIS_CLUSTER_NODES entry "redis://c:6379" must be host:port, such as 10.0.0.5:26379 or [fd00::5]:26379'],
    ],
    [
      { REDIS_URL: 'redis://a:6379', REDIS_PASSWORD: 'p' },
      ['REDIS_PASSWORD is used only with REDIS_SENTINELS or REDIS_CLUSTER_NODES (with REDIS_URL, put it in the URL: redis://:password@host:port)'],
    ],
    [
      { REDIS_PASSWORD: 'p' },
      ['REDIS_PASSWORD is used only with REDIS_SENTINELS or REDIS_CLUSTER_NODES (with REDIS_URL, put it in the URL: redis://:password@host:port)'],
    ],
  ])('reports a bad Redis topology: %j', (env, expected) => {
    expect(problemsOf(env)).toEqual(expected);
  });

  it('reads METRICS_PORT and LOG_LEVEL, and refuses a level pino does not have', () => {
    const config = readConfig({ METRICS_PORT: '9464', LOG_LEVEL: 'DEBUG' });
    expect(config.metricsPort).toBe(9464);
    expect(config.logLevel).toBe('debug');
    expect(readConfig({ METRICS_PORT: '0' }).metricsPort).toBe(0);
    const thrown = (() => {
      try {
        readConfig({ METRICS_PORT: 'x', LOG_LEVEL: 'verbose' });
      } catch (error) {
        return error;
      }
      return undefined;
    })();
    expect(thrown).toBeInstanceOf(ConfigError);
    expect((thrown as ConfigError).problems).toEqual([
      'METRICS_PORT "x" must be a whole number from 0 to 65535',
      'LOG_LEVEL "verbose" must be one of fatal, error, warn, info, debug, trace',
    ]);
  });

  it('reads METRICS_HOST, which is HOST unless set', () => {
    expect(readConfig({}).metricsHost).toBe('0.0.0.0');
    expect(readConfig({ HOST: '10.0.0.5' }).metricsHost).toBe('10.0.0.5');
    expect(readConfig({ HOST: '10.0.0.5', METRICS_HOST: '127.0.0.1' })).toMatchObject({ host: '10.0.0.5', metricsHost: '127.0.0.1' });
    expect(readConfig({ METRICS_HOST: ' ' }).metricsHost).toBe('0.0.0.0');
  });

  it('reads MAX_QUERY_TOKENS and MAX_BATCH_BYTES', () => {
    expect(readConfig({ MAX_QUERY_TOKENS: '2000', MAX_BATCH_BYTES: '4194304' }).limits).toMatchObject({ maxQueryTokens: 2000, maxBatchBytes: 4_194_304 });
  });

  it('turns introspection and the playground off in production, unless switched on', () => {
    const production = { NODE_ENV: 'production', JWT_SECRET: LONG_SECRET };
    expect(readConfig(production)).toMatchObject({ introspection: false, playground: false });
    expect(readConfig({ ...production, GRAPHQL_INTROSPECTION: 'on', PLAYGROUND: 'ON' })).toMatchObject({ introspection: true, playground: true });
    expect(readConfig({ GRAPHQL_INTROSPECTION: 'off', PLAYGROUND: 'off' })).toMatchObject({ introspection: false, playground: false });
  });

  it('counts JWT_SECRET in bytes, not characters', () => {
    expect(readConfig({ JWT_SECRET: 'é'.repeat(16) }).jwtSecret).toBe('é'.repeat(16));
  });

  it('reports several problems together in one error', () => {
    const problems = problemsOf({
      SUBSCRIBE_PORT: 'abc',
      PUBLISH_PORT: '70000',
      REDIS_URL: 'http://x',
      CORS_ORIGINS: 'https://ok.example.com,*',
      CHANNEL_PREFIX: 'a:b',
      JWT_SECRET: 'short',
    });
    expect(problems).toHaveLength(6);
    for (const variable of ['SUBSCRIBE_PORT', 'PUBLISH_PORT', 'REDIS_URL', 'CORS_ORIGINS', 'CHANNEL_PREFIX', 'JWT_SECRET']) {
      expect(problems.filter((problem) => problem.startsWith(variable))).toHaveLength(1);
    }
  });

  it('reports every bad CORS_ORIGINS entry', () => {
    expect(problemsOf({ CORS_ORIGINS: '*, https://a.example.com/x, https://b.example.com' })).toEqual([
      'CORS_ORIGINS entry "*" must be an exact origin such as https://app.example.com (no wildcard, no path)',
      'CORS_ORIGINS entry "https://a.example.com/x" must be an exact origin such as https://app.example.com (no wildcard, no path)',
    ]);
  });

  it('parses CORS_ORIGINS as a comma-separated list of origins', () => {
    const { corsOrigins } = readConfig({
      CORS_ORIGINS: ' https://app.example.com , http://localhost:3000,,https://admin.example.com/ ',
    });
    expect(corsOrigins).toEqual(['https://app.example.com', 'http://localhost:3000', 'https://admin.example.com']);
  });

  it('turns literal "\\n" in JWT_PUBLIC_KEY into newlines', () => {
    const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const oneLine = pem.replace(/\n/g, '\\n');
    expect(oneLine).not.toContain('\n');

    const config = readConfig({ JWT_PUBLIC_KEY: oneLine, NODE_ENV: 'production' });
    expect(config.jwtPublicKey).toBe(pem);
    expect(publicKey(config.jwtPublicKey ?? '').algorithm).toBe('ES256');
  });
});

describe('a JWT_SECRET published in the repository', () => {
  const envExample = readFileSync(new URL('../../.env.example', import.meta.url), 'utf8');
  const exampleSecret = /^JWT_SECRET=(.*)$/m.exec(envExample)?.[1]?.trim();

  it.each([...PUBLISHED_JWT_SECRETS])('is refused in production, naming JWT_SECRET: %s', (secret) => {
    const [problem] = problemsOf({ NODE_ENV: 'production', JWT_SECRET: secret });
    expect(problem).toMatch(/^JWT_SECRET is a value published in Herald's repository/);
  });

  it("includes .env.example's placeholder, and the old compose default", () => {
    expect(exampleSecret).toBeDefined();
    expect(PUBLISHED_JWT_SECRETS.has(exampleSecret ?? '')).toBe(true);
    expect(PUBLISHED_JWT_SECRETS.has('dev-only-secret-change-me-0123456789abcdef')).toBe(true);
  });

  it('is still accepted outside production (a local run of the compose values)', () => {
    expect(readConfig({ JWT_SECRET: exampleSecret }).jwtSecret).toBe(exampleSecret);
  });

  it('leaves other secrets alone in production, the test suite\'s included', () => {
    expect(readConfig({ NODE_ENV: 'production', JWT_SECRET: TEST_SECRET }).jwtSecret).toBe(TEST_SECRET);
  });
});

describe('push settings', () => {
  const vapid = {
    PUSH_VAPID_SUBJECT: 'mailto:ops@example.com',
    PUSH_VAPID_PUBLIC_KEY: Buffer.concat([Buffer.from([4]), Buffer.alloc(64, 7)]).toString('base64url'),
    PUSH_VAPID_PRIVATE_KEY: Buffer.alloc(32, 9).toString('base64url'),
  };
  const serviceAccountFile = (content: string): string => {
    const file = join(mkdtempSync(join(tmpdir(), 'herald-config-')), 'key.json');
    writeFileSync(file, content);
    return file;
  };
  const privateKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

  it('sends for real only in production', () => {
    expect(readConfig({}).push.dryRun).toBe(true);
    expect(readConfig({ NODE_ENV: 'production', JWT_SECRET: LONG_SECRET }).push.dryRun).toBe(false);
  });

  it('reads the worker settings and the senders', () => {
    const file = serviceAccountFile(
      JSON.stringify({ type: 'service_account', project_id: 'herald-test', client_email: 'push@herald-test.iam.gserviceaccount.com', private_key: privateKey }),
    );
    const push = readConfig({
      PUSH_CONCURRENCY: '512',
      PUSH_MAX_ATTEMPTS: '3',
      PUSH_CLAIM_IDLE_MS: '60000',
      PUSH_OFFLINE_GRACE_MS: '0',
      PUSH_MAX_DEVICES_PER_USER: '4',
      PUSH_DEDUP_TTL_SECONDS: '3600',
      PUSH_FCM_SERVICE_ACCOUNT_FILE: file,
      PUSH_FCM_URL: 'http://127.0.0.1:9/',
      PUSH_WEBHOOK_SECRET: `whsec_${Buffer.alloc(32, 1).toString('base64')}`,
      ...vapid,
    }).push;
    expect(push).toMatchObject({ concurrency: 512, maxAttempts: 3, claimIdleMs: 60_000, offlineGraceMs: 0, maxDevicesPerUser: 4, dedupTtlMs: 3_600_000 });
    // a tenant's share follows PUSH_CONCURRENCY unless set
    expect(push).toMatchObject({ tenantConcurrency: 128, destinationConcurrency: 32, breakerFailures: 5, breakerCooldownMs: 30_000 });
    expect(
      readConfig({ PUSH_TENANT_CONCURRENCY: '20', PUSH_DESTINATION_CONCURRENCY: '8', PUSH_BREAKER_FAILURES: '3', PUSH_BREAKER_COOLDOWN_MS: '2000' }).push,
    ).toMatchObject({ concurrency: 256, tenantConcurrency: 20, destinationConcurrency: 8, breakerFailures: 3, breakerCooldownMs: 2000 });
    expect(push.fcm).toEqual({
      serviceAccount: { projectId: 'herald-test', clientEmail: 'push@herald-test.iam.gserviceaccount.com', privateKey },
      url: 'http://127.0.0.1:9',
      tokenUrl: 'https://oauth2.googleapis.com/token',
    });
    expect(push.vapid).toEqual({ subject: vapid.PUSH_VAPID_SUBJECT, publicKey: vapid.PUSH_VAPID_PUBLIC_KEY, privateKey: vapid.PUSH_VAPID_PRIVATE_KEY });
    expect(push.webhookSecret).toMatch(/^whsec_/);
  });

  it('reads the retry window, and refuses one the send markers would not outlive', () => {
    expect(readConfig({ PUSH_RETRY_WINDOW_MS: '600000', PUSH_RETRY_POLL_MS: '250' }).push).toMatchObject({ retryWindowMs: 600_000, retryPollMs: 250, maxAttempts: 8 });
    expect(problemsOf({ PUSH_RETRY_WINDOW_MS: '3600000', PUSH_DEDUP_TTL_SECONDS: '3600' })).toEqual([
      expect.stringMatching(/^PUSH_RETRY_WINDOW_MS \(3600000\) must be shorter than PUSH_DEDUP_TTL_SECONDS \(3600 s\)/),
    ]);
  });

  it('reports every bad push variable by name', () => {
    const problems = problemsOf({
      PUSH_CONCURRENCY: '0',
      PUSH_CLAIM_IDLE_MS: '5000',
      PUSH_FCM_SERVICE_ACCOUNT_FILE: serviceAccountFile(JSON.stringify({ type: 'service_account', project_id: 'p' })),
      PUSH_FCM_TOKEN_URL: 'ftp://example.com',
      PUSH_VAPID_SUBJECT: 'ops@example.com',
      PUSH_VAPID_PUBLIC_KEY: 'short',
      PUSH_VAPID_PRIVATE_KEY: vapid.PUSH_VAPID_PRIVATE_KEY,
      PUSH_WEBHOOK_SECRET: 'not-a-secret',
    });
    expect(problems).toEqual([
      expect.stringMatching(/^PUSH_CLAIM_IDLE_MS \(5000\) must be longer than PUSH_SEND_TIMEOUT_MS/),
      expect.stringMatching(/^PUSH_CONCURRENCY "0"/),
      expect.stringMatching(/^PUSH_FCM_TOKEN_URL "ftp:/),
      expect.stringMatching(/^PUSH_FCM_SERVICE_ACCOUNT_FILE ".*" has no "private_key"/),
      expect.stringMatching(/^PUSH_VAPID_SUBJECT "ops@example.com" must be a mailto:/),
      expect.stringMatching(/^PUSH_VAPID_PUBLIC_KEY must be/),
      expect.stringMatching(/^PUSH_WEBHOOK_SECRET must be whsec_/),
    ]);
  });

  it('reads PUSH_ALLOWED_NETWORKS as CIDRs (a bare address is one host), and names each bad entry', () => {
    expect(readConfig({ PUSH_ALLOWED_NETWORKS: ' 10.20.0.0/16, fd00:1::/48 ,192.0.2.7' }).push.allowedNetworks).toEqual([
      { address: '10.20.0.0', prefix: 16, family: 'ipv4' },
      { address: 'fd00:1::', prefix: 48, family: 'ipv6' },
      { address: '192.0.2.7', prefix: 32, family: 'ipv4' },
    ]);
    expect(problemsOf({ PUSH_ALLOWED_NETWORKS: '10.0.0.0/33,internal.example/8,fd00::/129,10.0.0.0/x,1.2.3.4/8/9' })).toEqual([
      'PUSH_ALLOWED_NETWORKS entry "10.0.0.0/33" has a prefix length above 32',
      'PUSH_ALLOWED_NETWORKS entry "internal.example/8" is not an IPv4 or IPv6 network such as 10.0.0.0/8 or fd00::/8',
      'PUSH_ALLOWED_NETWORKS entry "fd00::/129" has a prefix length above 128',
      'PUSH_ALLOWED_NETWORKS entry "10.0.0.0/x" has a prefix length that is not a number',
      'PUSH_ALLOWED_NETWORKS entry "1.2.3.4/8/9" is not an IPv4 or IPv6 network such as 10.0.0.0/8 or fd00::/8',
    ]);
  });

  it('refuses a tenant share above the worker\'s, and limits out of range, by name', () => {
    expect(problemsOf({ PUSH_CONCURRENCY: '16', PUSH_TENANT_CONCURRENCY: '32', PUSH_DESTINATION_CONCURRENCY: '0', PUSH_BREAKER_FAILURES: 'many', PUSH_BREAKER_COOLDOWN_MS: '5' })).toEqual([
      'PUSH_TENANT_CONCURRENCY (32) must not exceed PUSH_CONCURRENCY (16)',
      expect.stringMatching(/^PUSH_DESTINATION_CONCURRENCY "0" must be a whole number from 1/),
      expect.stringMatching(/^PUSH_BREAKER_FAILURES "many" must be a whole number/),
      expect.stringMatching(/^PUSH_BREAKER_COOLDOWN_MS "5" must be a whole number from 100/),
    ]);
  });

  it('wants all three VAPID variables or none, and a readable key file', () => {
    expect(problemsOf({ PUSH_VAPID_SUBJECT: 'mailto:ops@example.com' })).toEqual([expect.stringMatching(/must be set together/)]);
    expect(problemsOf({ PUSH_FCM_SERVICE_ACCOUNT_FILE: '/nonexistent/key.json' })).toEqual([
      expect.stringMatching(/^PUSH_FCM_SERVICE_ACCOUNT_FILE "\/nonexistent\/key.json" cannot be read/),
    ]);
  });
});
