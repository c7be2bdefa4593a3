/**
 * The image's exact commands without Docker: `node dist/main.js subscribe|publish` (its
 * CMD and compose's commands) and `node dist/healthcheck.js` (its HEALTHCHECK), as real
 * processes on a real Redis. In a container that node is PID 1, so SIGTERM from
 * `docker stop` reaches Herald itself: clients see the documented shutdown and the
 * process exits 0.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { promisify } from 'node:util';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, closeGrpcClients, feedClient, healthClient, healthWatch, readFeed } from '../support/grpc.js';
import { waitFor } from '../support/herald.js';
import { send } from '../support/http.js';
import { exitWithin, startHeraldProcess, stopAllProcesses, type HeraldProcess } from '../support/process.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import { serviceToken, TEST_SECRET, userToken } from '../support/tokens.js';
import { closeAllClients, collect, ON_NOTIFICATION, wsClient } from '../support/ws.js';

/** How long a stopping process may take to exit (there is no drain to wait for here). */
const EXIT_BOUND_MS = 10_000;
const ROOT = new URL('../../', import.meta.url);

let redis: RedisServer;
let subscribe: HeraldProcess;
let publish: HeraldProcess;

beforeAll(async () => {
  redis = await startRedisServer();
  [subscribe, publish] = await Promise.all([
    startHeraldProcess('subscribe', { entry: 'dist', env: { REDIS_URL: redis.url } }),
    startHeraldProcess('publish', { entry: 'dist', env: { REDIS_URL: redis.url } }),
  ]);
});
afterAll(async () => {
  closeGrpcClients();
  await closeAllClients();
  await stopAllProcesses();
  await redis.stop();
});

/** The command line of `pid`, split into its arguments. */
function commandLine(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
}

/** The pids of every process descended from `pid`. */
function descendants(pid: number): number[] {
  const parents = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // `pid (comm) state ppid …`: comm may hold spaces and parentheses, so read after the last ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      parents.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone since the listing
    }
  }
  const found: number[] = [];
  for (let queue = [pid]; queue.length > 0; ) {
    const parent = queue.shift();
    for (const [child, ppid] of parents) if (ppid === parent) (found.push(child), queue.push(child));
  }
  return found;
}

/** A port nothing listens on. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (typeof address !== 'object' || address === null) throw new Error('no port');
  return address.port;
}

/** Runs the image's HEALTHCHECK command with these ports; resolves with its exit code and output. */
async function healthcheck(ports: { SUBSCRIBE_PORT: number; PUBLISH_PORT: number }): Promise<{ code: number; output: string }> {
  const env = { ...process.env, NODE_ENV: 'production', JWT_SECRET: TEST_SECRET, HOST: '127.0.0.1', SUBSCRIBE_PORT: String(ports.SUBSCRIBE_PORT), PUBLISH_PORT: String(ports.PUBLISH_PORT) };
  try {
    const { stdout } = await promisify(execFile)(process.execPath, ['dist/healthcheck.js'], { cwd: ROOT, env, timeout: 10_000 });
    return { code: 0, output: stdout };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? -1, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` };
  }
}

describe('node dist/main.js', () => {
  it('is plain node running the compiled build: no tsx, npm or esbuild in its process tree', () => {
    for (const [herald, mode] of [
      [subscribe, 'subscribe'],
      [publish, 'publish'],
    ] as const) {
      expect(commandLine(herald.pid)).toEqual([process.execPath, 'dist/main.js', mode]);
      const tree = [herald.pid, ...descendants(herald.pid)].map((pid) => commandLine(pid).join(' '));
      for (const command of tree) expect(command).not.toMatch(/tsx|npm|esbuild/);
    }
  });
});

describe('node dist/healthcheck.js', () => {
  it('passes for either role, whichever port it serves; fails when nothing answers', async () => {
    const unused = await freePort();
    const forSubscribe = await healthcheck({ SUBSCRIBE_PORT: subscribe.subscribePort ?? 0, PUBLISH_PORT: unused });
    expect(forSubscribe).toEqual({ code: 0, output: `herald healthcheck: SUBSCRIBE_PORT ${subscribe.subscribePort} ready, PUBLISH_PORT ${unused} not listening\n` });
    expect((await healthcheck({ SUBSCRIBE_PORT: unused, PUBLISH_PORT: publish.publishPort ?? 0 })).code).toBe(0);
    expect((await healthcheck({ SUBSCRIBE_PORT: unused, PUBLISH_PORT: unused })).code).toBe(1);
  });

  it('fails while Redis is down (/readyz 503), and passes again once it is back', async () => {
    const ports = { SUBSCRIBE_PORT: subscribe.subscribePort ?? 0, PUBLISH_PORT: publish.publishPort ?? 0 };
    await redis.kill();
    await waitFor(async () => (await fetch(`http://127.0.0.1:${ports.SUBSCRIBE_PORT}/readyz`)).status === 503, '/readyz 503');
    const down = await healthcheck(ports);
    expect(down.code).toBe(1);
    expect(down.output).toContain(`SUBSCRIBE_PORT ${ports.SUBSCRIBE_PORT} not ready`);
    await redis.restart();
    await waitFor(async () => (await healthcheck(ports)).code === 0, 'the health check to pass again', 15_000);
  });
});

describe('SIGTERM to the process (docker stop)', () => {
  it('subscribe: WebSocket clients see 1001, gRPC Feeds end with UNAVAILABLE, and the process exits 0', async () => {
    let closeCode: number | undefined;
    const ws = collect(
      wsClient(`ws://127.0.0.1:${subscribe.subscribePort}/graphql`, { token: userToken('sigterm'), onClosed: (code) => (closeCode = code) }),
      ON_NOTIFICATION,
      { userName: 'sigterm' },
    );
    const feed = readFeed(feedClient(subscribe.grpcPort ?? 0).feed({ userName: 'sigterm' }, bearer(userToken('sigterm'))));
    const publishUrl = `http://127.0.0.1:${publish.publishPort}/graphql`;
    // Both are subscribed once one notification reaches both (they share one Redis channel).
    await waitFor(async () => (await send(publishUrl, serviceToken(), 'sigterm', 'probe')) === 2, 'both subscriptions', 10_000);
    await ws.nth(0);
    await feed.nth(0);

    const started = Date.now();
    process.kill(subscribe.pid, 'SIGTERM');
    expect(await feed.ended(EXIT_BOUND_MS)).toMatchObject({ code: status.UNAVAILABLE });
    await waitFor(() => closeCode !== undefined, 'the WebSocket to close', EXIT_BOUND_MS);
    expect(closeCode).toBe(1001);
    expect(await exitWithin(subscribe.exited, EXIT_BOUND_MS)).toBe(0);
    expect(Date.now() - started).toBeLessThan(EXIT_BOUND_MS);
    expect(subscribe.output()).toContain('herald: SIGTERM: stopping');
  });

  it('publish: gRPC health watchers see NOT_SERVING, then UNAVAILABLE, and the process exits 0', async () => {
    const watch = healthWatch(healthClient(publish.publishGrpcPort ?? 0));
    expect(await watch.nth(0)).toBe('SERVING');
    process.kill(publish.pid, 'SIGTERM');
    expect(await watch.nth(1, EXIT_BOUND_MS)).toBe('NOT_SERVING');
    expect(await watch.ended(EXIT_BOUND_MS)).toMatchObject({ code: status.UNAVAILABLE });
    expect(await exitWithin(publish.exited, EXIT_BOUND_MS)).toBe(0);
  });
});

describe("compose's push worker: node dist/main.js push", () => {
  /** The push service's health check in docker-compose.yml, its metrics port replaced by `port`. */
  const composeHealthcheck = (port: number): string => {
    const compose = readFileSync(new URL('docker-compose.yml', ROOT), 'utf8');
    const script = /"node", "-e", "(fetch\('http:\/\/127\.0\.0\.1:9464\/metrics'\)[^"]*)"/.exec(compose)?.[1];
    if (script === undefined) throw new Error("docker-compose.yml's push health check is not where this test looks");
    return script.replace(':9464/', `:${port}/`);
  };

  it('starts with the unset provider settings compose passes (blank), says no kind is configured, is healthy on its metrics port, and exits 0 on SIGTERM', async () => {
    // compose's environment: blank PUSH_* when .env sets none, LOG_LEVEL info, METRICS_PORT (0 here: any free one)
    const blank = { PUSH_WEBHOOK_SECRET: '', PUSH_VAPID_SUBJECT: '', PUSH_VAPID_PUBLIC_KEY: '', PUSH_VAPID_PRIVATE_KEY: '', PUSH_APNS_KEY_ID: '', PUSH_APNS_TEAM_ID: '', PUSH_APNS_KEY: '', PUSH_APNS_TOPIC: '', PUSH_ALLOWED_NETWORKS: '' };
    const worker = await startHeraldProcess('push', { entry: 'dist', env: { REDIS_URL: redis.url, LOG_LEVEL: 'info', METRICS_PORT: '0', ...blank } });
    expect(commandLine(worker.pid).slice(1)).toEqual(['dist/main.js', 'push']);
    expect(worker.output()).toContain('push: no device kind is configured');
    const check = await promisify(execFile)(process.execPath, ['-e', composeHealthcheck(worker.metricsPort ?? 0)]).then(
      () => 0,
      (error: { code?: number }) => error.code ?? 1,
    );
    expect(check).toBe(0);
    // and it fails where nothing listens
    const unused = await freePort();
    const failed = await promisify(execFile)(process.execPath, ['-e', composeHealthcheck(unused)]).then(
      () => 0,
      (error: { code?: number }) => error.code ?? 1,
    );
    expect(failed).toBe(1);
    process.kill(worker.pid, 'SIGTERM');
    expect(await exitWithin(worker.exited, EXIT_BOUND_MS)).toBe(0);
  });

  it('with PUSH_WEBHOOK_SECRET from the environment, sends to webhooks', async () => {
    const worker = await startHeraldProcess('push', { entry: 'dist', env: { REDIS_URL: redis.url, PUSH_WEBHOOK_SECRET: `whsec_${Buffer.alloc(32, 1).toString('base64')}` } });
    expect(worker.output()).toContain('push: sending to WEBHOOK devices');
    expect(worker.output()).not.toContain('no device kind is configured');
  });
});
