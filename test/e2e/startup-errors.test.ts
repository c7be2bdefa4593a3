/**
 * Start-up errors an operator fixes with one variable, as they appear when the image's
 * command (`node dist/main.js <role>`) runs: one line naming the variable, no stack
 * trace, exit 1 — or, for a Redis that is not there yet, a warning naming REDIS_URL and
 * a server that becomes ready once Redis is.
 */
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/herald.js';
import { closeGrpcClients, healthCheck, healthClient } from '../support/grpc.js';
import { exitWithin, spawnHerald, startHeraldProcess, stopAllProcesses } from '../support/process.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import { PATIENCE_MS } from '../support/patience.js';

let redis: RedisServer;
const blockers: Server[] = [];

beforeAll(async () => {
  redis = await startRedisServer();
});
afterAll(async () => {
  closeGrpcClients();
  await stopAllProcesses();
  for (const blocker of blockers) blocker.close();
  await redis.stop();
});

/** A port some other program already listens on. */
async function portInUse(): Promise<number> {
  const blocker = createServer();
  blockers.push(blocker);
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const address = blocker.address();
  if (typeof address !== 'object' || address === null) throw new Error('no port');
  return address.port;
}

describe('an address that is not this machine', () => {
  it('METRICS_HOST: named, with no stack trace, exit 1', async () => {
    // TEST-NET-1 (RFC 5737): never an address of this machine.
    const herald = spawnHerald('publish', { entry: 'dist', env: { REDIS_URL: redis.url, METRICS_PORT: '0', METRICS_HOST: '192.0.2.1' } });
    expect(await exitWithin(herald.exited, PATIENCE_MS)).toBe(1);
    const output = herald.output();
    expect(output).toContain('herald: METRICS_HOST 192.0.2.1 is not an address of this machine (listening for METRICS_PORT): set METRICS_HOST');
    expect(output).not.toMatch(/^\s+at /m);
  });
});

describe('a port already in use', () => {
  it.each([
    ['subscribe', 'SUBSCRIBE_PORT'],
    ['subscribe', 'GRPC_PORT'],
    ['publish', 'PUBLISH_PORT'],
    ['publish', 'PUBLISH_GRPC_PORT'],
  ] as const)('%s: names %s, prints no stack trace and exits 1', async (mode, variable) => {
    const port = await portInUse();
    const herald = spawnHerald(mode, { entry: 'dist', env: { REDIS_URL: redis.url, [variable]: String(port) } });
    expect(await exitWithin(herald.exited, PATIENCE_MS)).toBe(1);
    const output = herald.output();
    expect(output).toContain(`herald: ${variable} ${port} is already in use: set ${variable} to a free port`);
    expect(output).not.toMatch(/^\s+at /m);
    expect(output).not.toContain('No address added');
  });

  it.each([
    ['subscribe', 'SUBSCRIBE_WORKERS', 'SUBSCRIBE_PORT'],
    ['publish', 'PUBLISH_WORKERS', 'PUBLISH_PORT'],
  ] as const)('with %s workers (%s): the primary stops and exits 1 instead of replacing workers that cannot start', async (role, workers, portVariable) => {
    const port = await portInUse();
    const herald = spawnHerald(role, { entry: 'dist', env: { REDIS_URL: redis.url, [workers]: '2', [portVariable]: String(port) } });
    expect(await exitWithin(herald.exited, PATIENCE_MS)).toBe(1);
    expect(herald.output()).toContain(`herald: ${portVariable} ${port} is already in use: set ${portVariable} to a free port`);
    expect(herald.output()).toContain(`herald: a ${role} worker could not start; stopping`);
    expect(herald.output()).not.toContain('starting another');
  });
});

describe('a worker count for another role', () => {
  it.each([
    ['subscribe', { PUBLISH_WORKERS: '2' }, ['PUBLISH_WORKERS applies to `npm run start:publish` only']],
    ['publish', { SUBSCRIBE_WORKERS: '2' }, ['SUBSCRIBE_WORKERS applies to `npm run start:subscribe` only']],
    ['push', { PUBLISH_WORKERS: '3' }, ['PUBLISH_WORKERS applies to `npm run start:publish` only']],
    [
      'all',
      { SUBSCRIBE_WORKERS: '2', PUBLISH_WORKERS: '2' },
      ['SUBSCRIBE_WORKERS applies to `npm run start:subscribe` only', 'PUBLISH_WORKERS applies to `npm run start:publish` only'],
    ],
  ] as const)('%s with %o: names the setting and exits 1 before starting anything', async (mode, env, messages) => {
    const herald = spawnHerald(mode, { entry: 'dist', env: { REDIS_URL: redis.url, ...env } });
    expect(await exitWithin(herald.exited, PATIENCE_MS)).toBe(1);
    for (const message of messages) expect(herald.output()).toContain(message);
    expect(herald.output()).not.toMatch(/^\s+at /m);
    expect(herald.output()).not.toMatch(/\d+ (subscribe|publish) workers/);
  });
});

describe('Redis not reachable at start-up', () => {
  it('warns naming REDIS_URL (password hidden) and the error, serves not-ready, and becomes ready when Redis comes', async () => {
    const late = await startRedisServer();
    try {
      await late.kill();
      const url = `redis://:hunter2-secret@127.0.0.1:${late.port}`;
      const herald = await startHeraldProcess('subscribe', { entry: 'dist', env: { REDIS_URL: url } });
      const output = herald.output();
      expect(output).toContain(
        `herald: REDIS_URL redis://:***@127.0.0.1:${late.port} is not reachable after 5 s (connect ECONNREFUSED 127.0.0.1:${late.port}): check REDIS_URL`,
      );
      expect(output).not.toContain('hunter2-secret');
      expect((await fetch(`http://127.0.0.1:${herald.subscribePort}/readyz`)).status).toBe(503);
      const health = healthClient(herald.grpcPort ?? 0);
      expect(await healthCheck(health)).toBe('NOT_SERVING');

      // Redis joins later (a container started after Herald's): the same process becomes ready.
      await late.restart();
      await waitFor(async () => (await fetch(`http://127.0.0.1:${herald.subscribePort}/readyz`)).status === 200, '/readyz 200', PATIENCE_MS);
      expect(await healthCheck(health)).toBe('SERVING');
      expect(herald.child.exitCode).toBeNull();
    } finally {
      await late.stop();
    }
  });
});
