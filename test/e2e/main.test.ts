/**
 * The command line as an operator runs it: `npm start` (all-in-one, in-process broker,
 * dev token) and the split servers as separate processes on one Redis.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { channels, waitFor } from '../support/herald.js';
import { send } from '../support/http.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import { LOCAL_NETWORKS, localNetworkPolicy, startHttpRecorder } from '../support/push-servers.js';
import { createPushKeys } from '../../src/push/keys.js';
import { createDeviceStore } from '../../src/push/devices.js';
import { createPushQueue } from '../../src/push/queue.js';
import { Webhook } from 'standardwebhooks';
import { serviceToken, TEST_SECRET, userToken } from '../support/tokens.js';
import { closeAllClients, collect, ON_NOTIFICATION, wsClient } from '../support/ws.js';
import { PATIENCE_MS } from '../support/patience.js';

interface Started {
  readonly child: ChildProcess;
  output: string;
  /** Resolves with the exit code, or the signal that ended npm itself. */
  readonly exited: Promise<number | string | null>;
}

const children: ChildProcess[] = [];

/** Runs an npm script in its own process group, so stopping it stops tsx and node too. */
function run(script: string, env: Record<string, string>): Started {
  const child = spawn('npm', ['run', '--silent', script], {
    env: {
      ...process.env,
      NODE_ENV: '',
      HOST: '127.0.0.1',
      SUBSCRIBE_PORT: '0',
      PUBLISH_PORT: '0',
      GRPC_PORT: '0',
      PUBLISH_GRPC_PORT: '0',
      // A freshly started process on a busy CI machine may take a while to report its first delivery.
      DELIVERY_ACK_TIMEOUT_MS: '5000',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  children.push(child);
  const started: Started = {
    child,
    output: '',
    exited: new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal))),
  };
  child.stdout?.on('data', (chunk: Buffer) => (started.output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (started.output += chunk.toString()));
  return started;
}

function stop(child: ChildProcess): void {
  if (child.exitCode === null && child.pid !== undefined) {
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
}

/** SIGTERM to the group (npm dies of it; Herald logs and closes its servers). */
async function stopGracefully(started: Started): Promise<void> {
  stop(started.child);
  await started.exited;
  await waitFor(() => started.output.includes('SIGTERM: stopping'), 'Herald to log its shutdown');
  expect(started.output).not.toContain('stop failed');
}

function portOf(output: string, label: RegExp): number {
  const match = label.exec(output);
  if (!match?.[1]) throw new Error(`no ${label} in:\n${output}`);
  return Number(match[1]);
}

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedisServer();
});
afterAll(async () => {
  await closeAllClients();
  children.forEach(stop);
  await redis.stop();
});

describe('npm start (all-in-one, no Redis)', () => {
  it('prints the playground and working dev tokens', async () => {
    const herald = run('start', {});
    await waitFor(() => herald.output.includes('send alice a notification'), 'the banner', PATIENCE_MS);
    expect(herald.output).toContain('in-process broker (no REDIS_URL)');
    expect(herald.output).toContain('push worker: off (devices, topics and pushes need Redis: set REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES)');
    const subscribePort = portOf(herald.output, /playground \(GraphiQL\): http:\/\/localhost:(\d+)\/graphql/);
    const publishPort = portOf(herald.output, /publish \(HTTP POST\): http:\/\/localhost:(\d+)\/graphql/);
    const [userLine, serviceLine] = herald.output
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => /^eyJ[\w-]+\.[\w-]+\.[\w-]+$/.test(line));
    expect(userLine).toBeDefined();
    expect(serviceLine).toBeDefined();

    const graphiql = await fetch(`http://127.0.0.1:${subscribePort}/graphql`, { headers: { Accept: 'text/html' } });
    expect(await graphiql.text()).toContain(userLine); // the playground starts with the dev token
    // The inbox page, built by `npm start` and signed in with the dev token; development CORS.
    const inbox = /inbox page \(signed in as alice\): (http:\/\/localhost:\d+\/inbox\/)#token=(\S+)/.exec(herald.output);
    expect(inbox?.[2]).toBe(userLine);
    const inboxPage = await fetch((inbox?.[1] ?? '').replace('localhost', '127.0.0.1'));
    expect(inboxPage.status).toBe(200);
    expect(await inboxPage.text()).toContain('<script type="module" src="inbox.js">');
    expect(herald.output).toContain('CORS (development): pages on any http://localhost:<port>');

    const events = collect(wsClient(`ws://127.0.0.1:${subscribePort}/graphql`, { token: userLine ?? '' }), ON_NOTIFICATION, {
      userName: 'alice',
    });
    const publishUrl = `http://127.0.0.1:${publishPort}/graphql`;
    await waitFor(async () => (await send(publishUrl, serviceLine ?? '', 'store-1', 'warm-up', 'STORE')) === 1, 'the subscription');
    expect(await send(publishUrl, serviceLine ?? '', 'alice', 'hello from npm start')).toBe(1);
    expect((await events.nth(1)).data?.['onNotificationReceived']).toMatchObject({ text: 'hello from npm start', sender: 'billing' });

    await stopGracefully(herald);
  });
});

describe('split servers', () => {
  it('refuse to start without REDIS_URL', async () => {
    const subscribe = run('start:subscribe', {});
    expect(await subscribe.exited).toBe(1);
    expect(subscribe.output).toContain('REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES is required to run the subscribe server alone');
  });

  it('run the push worker on REDIS_CLUSTER_NODES, as the servers: it waits for an unreachable Cluster, saying so', async () => {
    const push = run('start:push', { REDIS_CLUSTER_NODES: '127.0.0.1:7', JWT_SECRET: TEST_SECRET });
    try {
      await waitFor(() => push.output.includes('push worker: Redis at REDIS_CLUSTER_NODES 127.0.0.1:7 is not reachable after 5 s'), 'the warning', 20_000);
    } finally {
      stop(push.child);
      await push.exited;
    }
  });

  it('refuse a bad configuration, naming every bad variable', async () => {
    const publish = run('start:publish', { REDIS_URL: 'http://nope', SUBSCRIBE_PORT: 'abc', JWT_SECRET: TEST_SECRET });
    expect(await publish.exited).toBe(1);
    expect(publish.output).toContain('REDIS_URL "http://nope" must look like redis://host:port');
    expect(publish.output).toContain('SUBSCRIBE_PORT "abc" must be a whole number');
  });

  it('refuse production without a JWT secret or key', async () => {
    const publish = run('start:publish', { REDIS_URL: redis.url, NODE_ENV: 'production' });
    expect(await publish.exited).toBe(1);
    expect(publish.output).toContain('NODE_ENV=production needs JWT_SECRET or JWT_PUBLIC_KEY');
  });

  it('run as separate processes that meet only in Redis', async () => {
    const env = { REDIS_URL: redis.url, JWT_SECRET: TEST_SECRET };
    const subscribe = run('start:subscribe', env);
    const publish = run('start:publish', env);
    await waitFor(() => subscribe.output.includes('playground') && publish.output.includes('publish (HTTP POST)'), 'both banners', PATIENCE_MS);
    expect(subscribe.output).not.toContain('dev mode');
    const subscribePort = portOf(subscribe.output, /playground \(GraphiQL\): http:\/\/localhost:(\d+)\/graphql/);
    const publishPort = portOf(publish.output, /publish \(HTTP POST\): http:\/\/localhost:(\d+)\/graphql/);

    const events = collect(wsClient(`ws://127.0.0.1:${subscribePort}/graphql`, { token: userToken('alice') }), ON_NOTIFICATION, {
      userName: 'alice',
    });
    await waitFor(async () => (await redis.numsub(channels.audienceChannel('acme', 'USER', 'alice'))) === 1, 'the subscription', 10_000);
    expect(await send(`http://127.0.0.1:${publishPort}/graphql`, serviceToken(), 'alice', 'across processes')).toBe(1);
    expect((await events.nth(0)).data?.['onNotificationReceived']).toMatchObject({ text: 'across processes' });
    await Promise.all([stopGracefully(subscribe), stopGracefully(publish)]);
  });

  it('run the subscribe server as several worker processes on one port (SUBSCRIBE_WORKERS)', async () => {
    const env = { REDIS_URL: redis.url, JWT_SECRET: TEST_SECRET };
    const subscribe = run('start:subscribe', { ...env, SUBSCRIBE_WORKERS: '2' });
    const publish = run('start:publish', env);
    await waitFor(
      () =>
        subscribe.output.includes('all 2 subscribe workers are listening') &&
        subscribe.output.includes('playground') &&
        publish.output.includes('publish (HTTP POST)'),
      'both workers and the publish server',
      20_000,
    );
    const subscribePort = portOf(subscribe.output, /playground \(GraphiQL\): http:\/\/localhost:(\d+)\/graphql/);
    const publishPort = portOf(publish.output, /publish \(HTTP POST\): http:\/\/localhost:(\d+)\/graphql/);

    // Connections are handed to the workers in turn: four connections, two workers.
    const listeners = [0, 1, 2, 3].map(() =>
      collect(wsClient(`ws://127.0.0.1:${subscribePort}/graphql`, { token: userToken('wes') }), ON_NOTIFICATION, { userName: 'wes' }),
    );
    await waitFor(async () => (await redis.numsub(channels.audienceChannel('acme', 'USER', 'wes'))) === 2, 'one SUBSCRIBE per worker', 10_000);
    await waitFor(async () => (await send(`http://127.0.0.1:${publishPort}/graphql`, serviceToken(), 'wes', 'probe')) === 4, 'all four subscriptions');
    expect(await send(`http://127.0.0.1:${publishPort}/graphql`, serviceToken(), 'wes', 'to every worker')).toBe(4);
    for (const events of listeners) {
      await waitFor(() => events.results.some((result) => (result.data?.['onNotificationReceived'] as { text: string } | undefined)?.text === 'to every worker'), 'the notification');
    }
    await Promise.all([stopGracefully(subscribe), stopGracefully(publish)]);
  });
});

describe('npm run start:publish with PUBLISH_WORKERS (development: no JWT_SECRET)', () => {
  it("runs the publish server as several processes on one port, and the banner's dev token is good on each", async () => {
    const publish = run('start:publish', { REDIS_URL: redis.url, PUBLISH_WORKERS: '2', LOG_LEVEL: 'debug' });
    await waitFor(() => publish.output.includes('all 2 publish workers are listening') && publish.output.includes('send alice a notification'), 'both workers and the banner', PATIENCE_MS);
    // One banner for both workers.
    expect(publish.output.split('publish (HTTP POST)')).toHaveLength(2);
    const publishPort = portOf(publish.output, /publish \(HTTP POST\): http:\/\/localhost:(\d+)\/graphql/);
    const devService = /token for service "billing"[^\n]*\n\s+(\S+)/.exec(publish.output)?.[1] ?? '';
    // Each on a connection of its own, so the workers take them in turn: a token from one
    // worker's own dev secret would be refused by the other.
    const statuses: number[] = [];
    for (let n = 0; n < 4; n++) {
      const response = await fetch(`http://127.0.0.1:${publishPort}/graphql`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${devService}`, Connection: 'close' },
        body: JSON.stringify({ query: 'mutation { sendNotification(to: "alice", text: "hi") { id } }' }),
      });
      statuses.push(response.status);
    }
    expect(statuses).toEqual([200, 200, 200, 200]);
    // Both workers answered (development lines: the worker's field under each).
    await waitFor(() => /answered 200[^\n]*\n[^\n]*\n\s+worker: 2/.test(publish.output) && /answered 200[^\n]*\n[^\n]*\n\s+worker: 1/.test(publish.output), 'both workers to answer');
    await stopGracefully(publish);
  });
});

describe('npm run start:push', () => {
  it('refuses to start without Redis', async () => {
    const push = run('start:push', {});
    expect(await push.exited).toBe(1);
    expect(push.output).toContain('REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES is required to run the push worker');
  });

  it('sends what the stream holds, signed, in production, and stops on SIGTERM', async () => {
    const hooks = await startHttpRecorder();
    const secret = `whsec_${Buffer.alloc(32, 9).toString('base64')}`;
    const client = redis.client();
    try {
      const keys = createPushKeys('cli-push');
      // Registered as the subscribe server does in development (production refuses http://), with the receiver's loopback network allowed.
      await createDeviceStore({ redis: client, keys, allowInsecureUrls: true, networkPolicy: localNetworkPolicy }).register('acme', 'ann', { kind: 'WEBHOOK', url: `${hooks.url}/ann` });
      const push = run('start:push', {
        REDIS_URL: redis.url,
        NODE_ENV: 'production',
        JWT_SECRET: TEST_SECRET,
        CHANNEL_PREFIX: 'cli-push',
        PUSH_WEBHOOK_SECRET: secret,
        PUSH_ALLOWED_NETWORKS: LOCAL_NETWORKS,
      });
      await waitFor(() => push.output.includes('herald: push worker on the Redis at'), 'the banner', PATIENCE_MS);
      expect(push.output).toMatch(/push worker \S+: sending/);
      const notification = { id: '1_1000-1', tenant: 'acme', audience: 'USER', to: 'ann', text: 'from the stream', timestamp: 1, sender: 'billing' } as const;
      await createPushQueue({ redis: client, keys }).enqueue(notification, 'ALWAYS');
      await waitFor(() => hooks.requests.length > 0, 'the webhook delivery', 10_000);
      const [delivery] = hooks.requests;
      const headers = Object.fromEntries(Object.entries(delivery?.headers ?? {}).map(([name, value]) => [name, String(value)]));
      expect(new Webhook(secret).verify(delivery?.body.toString('utf8') ?? '', headers)).toMatchObject({ id: '1_1000-1', user: 'ann', tenant: 'acme' });
      await stopGracefully(push);
    } finally {
      client.disconnect();
      await hooks.close();
    }
  });
});
