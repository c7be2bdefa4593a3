/**
 * No device reaches an internal address by any name (SSRF through devices: a name that
 * resolves to loopback once made the worker POST a signed notification there). Herald
 * runs as a real production process (`NODE_ENV=production`, sending for real) with its
 * push worker, on a real Redis; a "trap" — a local HTTP server on 127.0.0.1 that answers
 * 410 Gone to anything and counts every TCP connection — stands where an internal service
 * would.
 *
 * - Registration through the subscribe server refuses every internal form with
 *   `BAD_USER_INPUT` naming the field and the address.
 * - Devices written straight into Redis, as a registration from before the check left
 *   them, are pushed: the trap sees 0 connections, Redis sees no new client, each push is
 *   dead-lettered as refused after one attempt, and every device is still there (a 410
 *   would have removed it: no one-bit oracle).
 * - The same worker with `PUSH_ALLOWED_NETWORKS` covering loopback does reach the trap (so
 *   the 0 above is the policy, not a trap that cannot be reached), and its 410 removes
 *   the device.
 */
import { promises as dns } from 'node:dns';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import webPush from 'web-push';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCidr } from '../../../src/config/networks.js';
import { createDeadLetters, type DeadLetter } from '../../../src/push/dead-letters.js';
import { createDeviceStore, type DeviceAddress } from '../../../src/push/devices.js';
import { createPushKeys, type PushKeys } from '../../../src/push/keys.js';
import { createNetworkPolicy } from '../../../src/push/network-policy.js';
import { createPushQueue } from '../../../src/push/queue.js';
import { errorCode, postGraphQL } from '../../support/http.js';
import { createBrowserSubscription } from '../../support/push-servers.js';
import { eventually } from '../../support/push-worker.js';
import { exitWithin, spawnHerald, startHeraldProcess, stopAllProcesses, type HeraldProcess } from '../../support/process.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';
import { serviceToken, userToken } from '../../support/tokens.js';

const WEBHOOK_SECRET = `whsec_${Buffer.alloc(32, 3).toString('base64')}`;
const VAPID = webPush.generateVAPIDKeys();
const PUSH_ENV = {
  PUSH_WEBHOOK_SECRET: WEBHOOK_SECRET,
  PUSH_VAPID_SUBJECT: 'mailto:ops@example.com',
  PUSH_VAPID_PUBLIC_KEY: VAPID.publicKey,
  PUSH_VAPID_PRIVATE_KEY: VAPID.privateKey,
  PUSH_OFFLINE_GRACE_MS: '0',
  PUSH_RETRY_WINDOW_MS: '100',
  PUSH_RETRY_POLL_MS: '20',
};
const service = serviceToken({ tenant: 'acme' });
const REGISTER = 'mutation Register($device: DeviceInput!) { registerDevice(device: $device) { id } }';
const SEND = 'mutation Send($to: String!, $text: String!) { sendNotification(to: $to, text: $text, push: ALWAYS) { id } }';

/** This machine's own name, when it resolves to an internal address (it does on most machines: 127.0.1.1, or the private address). */
const ownName = hostname();
const ownNameIsInternal = (await dns.lookup(ownName, { all: true }).catch(() => [])).some(({ address }) => createNetworkPolicy().refusal(address) !== undefined);

interface Trap {
  readonly port: number;
  /** TCP connections accepted so far. */
  readonly connections: () => number;
  close(): Promise<void>;
}

/** An internal service: answers 410 Gone to any request, counts every connection. */
async function startTrap(): Promise<Trap> {
  let connections = 0;
  const sockets = new Set<Socket>();
  const server = http.createServer((_request, response) => void response.writeHead(410).end());
  server.on('connection', (socket) => {
    connections += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

let redis: RedisServer;
let inspect: Redis;
let trap: Trap;
let herald: HeraldProcess;

beforeAll(async () => {
  [redis, trap] = await Promise.all([startRedisServer(), startTrap()]);
  inspect = redis.client();
  herald = await startHeraldProcess('all', { env: { REDIS_URL: redis.url, ...PUSH_ENV } });
  expect(herald.output()).toMatch(/push worker \S+: sending/);
});
afterAll(async () => {
  await stopAllProcesses();
  inspect?.disconnect();
  await Promise.all([trap?.close(), redis?.stop()]);
});

/** Connections Redis has accepted since it started (`INFO stats`). */
async function redisConnectionsReceived(): Promise<number> {
  const match = /total_connections_received:(\d+)/.exec(await inspect.info('stats'));
  return Number(match?.[1]);
}

/** A Web Push subscription at `endpoint`, with a real browser key pair. */
const webPushAt = (endpoint: string): DeviceAddress => ({ kind: 'WEB_PUSH', subscription: createBrowserSubscription(endpoint).json });

describe('registration through the subscribe server', () => {
  const register = (device: unknown) =>
    postGraphQL(`http://127.0.0.1:${herald.subscribePort ?? 0}/graphql`, REGISTER, { token: userToken('mallory', { tenant: 'acme' }), variables: { device } });

  it('refuses every internal form of a webhook URL or Web Push endpoint with BAD_USER_INPUT naming the address', async () => {
    const port = trap.port;
    const cases: Array<readonly [url: string, named: string]> = [
      [`https://localhost:${port}/hook`, 'localhost is a loopback name'],
      [`https://localhost.:${port}/hook`, 'localhost. is a loopback name'],
      [`https://app.localhost:${port}/hook`, 'app.localhost is a loopback name'],
      [`https://127.0.0.1:${port}/hook`, '127.0.0.0/8 (loopback)'],
      [`https://0x7f.1:${port}/hook`, '127.0.0.0/8 (loopback)'], // WHATWG URL reads it as 127.0.0.1
      [`https://2130706433:${port}/hook`, '127.0.0.0/8 (loopback)'],
      ['https://[::127.0.0.1]/hook', '::/96 (IPv4-compatible, deprecated)'],
      ['https://[::ffff:127.0.0.1]/hook', 'embeds 127.0.0.1 (IPv4-mapped'],
      ['https://[64:ff9b::7f00:1]/hook', 'embeds 127.0.0.1 (NAT64'],
      ['https://[fec0::1]/hook', 'fec0::/10 (site-local, deprecated)'],
      ['https://[fd00::1]/hook', 'fc00::/7 (unique-local)'],
      ['https://224.0.0.1/hook', '224.0.0.0/4 (multicast)'],
      ['https://198.18.0.1/hook', '198.18.0.0/15 (benchmarking)'],
      ['https://169.254.169.254/latest/meta-data', '169.254.0.0/16 (link-local)'],
      [`https://localhost:${redis.port}/`, 'localhost is a loopback name'],
      ...(ownNameIsInternal ? [[`https://${ownName}:${port}/hook`, `${ownName} resolves to `] as const] : []),
    ];
    for (const [url, named] of cases) {
      const response = await register({ kind: 'WEBHOOK', url });
      expect(errorCode(response), url).toBe('BAD_USER_INPUT');
      expect(response.body.errors?.[0]?.message, url).toMatch(/^device\.url must not point at a loopback, private, link-local or other internal address: /);
      expect(response.body.errors?.[0]?.message, url).toContain(named);
    }
    const endpoint = await register(webPushAt(`https://localhost:${port}/push/1`));
    expect(errorCode(endpoint)).toBe('BAD_USER_INPUT');
    expect(endpoint.body.errors?.[0]?.message).toMatch(/^device\.subscription\.endpoint must not point at .*localhost is a loopback name/);
    // nothing was stored, and nothing was contacted
    expect(await inspect.hlen(createPushKeys('herald').devices('acme', 'mallory'))).toBe(0);
    expect(trap.connections()).toBe(0);
  });

  it('refuses a Web Push key that is not on the P-256 curve', async () => {
    const device = webPushAt('https://push.example.com/s/1') as Extract<DeviceAddress, { kind: 'WEB_PUSH' }>;
    const key = Buffer.from(device.subscription.keys.p256dh, 'base64url');
    key[64] = (key[64] ?? 0) ^ 1;
    const response = await register({ kind: 'WEB_PUSH', subscription: { ...device.subscription, keys: { ...device.subscription.keys, p256dh: key.toString('base64url') } } });
    expect(errorCode(response)).toBe('BAD_USER_INPUT');
    expect(response.body.errors?.[0]?.message).toBe('device.subscription.keys.p256dh is not a point on the P-256 curve');
  });
});

/** Stores `devices` for `user` as a registration from before the check did (same hash, same JSON). */
async function storeAsBefore(keys: PushKeys, user: string, devices: readonly DeviceAddress[]): Promise<void> {
  const anything = createNetworkPolicy({ allowedNetworks: [parseCidr('0.0.0.0/0'), parseCidr('::/0')] });
  const store = createDeviceStore({ redis: inspect, keys, allowInsecureUrls: true, networkPolicy: anything, maxDevicesPerUser: 20 });
  for (const device of devices) await store.register('acme', user, device);
}

async function publish(process: HeraldProcess, to: string): Promise<void> {
  const response = await postGraphQL(`http://127.0.0.1:${process.publishPort ?? 0}/graphql`, SEND, { token: service, variables: { to, text: 'for your internal services' } });
  expect(response.body.errors).toBeUndefined();
}

describe('devices stored before the check, pushed by the worker', () => {
  it('contact no internal address by any name: 0 connections, each push dead-lettered as refused after one attempt, every device kept', async () => {
    const keys = createPushKeys('herald');
    const port = trap.port;
    const devices: DeviceAddress[] = [
      { kind: 'WEBHOOK', url: `http://localhost:${port}/a` },
      { kind: 'WEBHOOK', url: `http://localhost.:${port}/b` },
      { kind: 'WEBHOOK', url: `https://localhost:${port}/c` },
      { kind: 'WEBHOOK', url: `http://127.0.0.1:${port}/d` },
      { kind: 'WEBHOOK', url: `http://[::ffff:127.0.0.1]:${port}/e` },
      { kind: 'WEBHOOK', url: `http://[::127.0.0.1]:${port}/f` },
      { kind: 'WEBHOOK', url: `http://[64:ff9b::7f00:1]:${port}/g` },
      // the Redis port: once, the worker sent it a TLS ClientHello on 3 connections, 5 attempts per push
      { kind: 'WEBHOOK', url: `https://localhost:${redis.port}/` },
      { kind: 'WEBHOOK', url: `http://127.0.0.1:${redis.port}/` },
      webPushAt(`http://localhost:${port}/push/1`),
      ...(ownNameIsInternal ? [{ kind: 'WEBHOOK', url: `http://${ownName}:${port}/h` } as const, webPushAt(`https://${ownName}:${port}/push/2`)] : []),
    ];
    await storeAsBefore(keys, 'mallory', devices);
    const redisBefore = await redisConnectionsReceived();

    await publish(herald, 'mallory');
    const deadLetters = createDeadLetters({ redis: inspect, keys, queue: createPushQueue({ redis: inspect, keys }) });
    let letters: DeadLetter[] = [];
    await eventually(async () => {
      letters = (await deadLetters.list(100)).filter((letter) => letter.user === 'mallory');
      return letters.length === devices.length;
    }, `a dead letter for each of the ${devices.length} devices`, 30_000);

    expect(trap.connections()).toBe(0);
    expect(await redisConnectionsReceived()).toBe(redisBefore);
    for (const letter of letters) {
      expect(letter.reason, letter.deviceId).toMatch(/^(webhook|push service): refused: /);
      expect(letter.attempts, letter.reason).toBe(1);
    }
    expect(letters.map((letter) => letter.kind).sort()).toEqual(devices.map((device) => device.kind).sort());
    // no 410 was ever seen, so no device was removed: the device list says nothing of the target
    expect(await inspect.hlen(keys.devices('acme', 'mallory'))).toBe(devices.length);
    // The entry is done, not left to retry: acknowledged and deleted just after its last
    // dead letter is written (on a loaded machine, after this test has read them).
    await eventually(async () => (await inspect.xlen('herald:push:stream')) === 0, 'the push entry to be done');
  });

  it('with PUSH_ALLOWED_NETWORKS covering loopback, the same kind of device reaches the trap, and its 410 removes it', async () => {
    const allowed = await startHeraldProcess('all', {
      env: { REDIS_URL: redis.url, ...PUSH_ENV, CHANNEL_PREFIX: 'allowed', PUSH_ALLOWED_NETWORKS: '127.0.0.0/8,::1' },
    });
    const keys = createPushKeys('allowed');
    await storeAsBefore(keys, 'olga', [{ kind: 'WEBHOOK', url: `http://localhost:${trap.port}/allowed` }]);
    const before = trap.connections();
    await publish(allowed, 'olga');
    await eventually(async () => (await inspect.hlen(keys.devices('acme', 'olga'))) === 0, 'the 410 to remove the device', 30_000);
    expect(trap.connections()).toBeGreaterThan(before);
    await allowed.stop();
  });
});

describe('PUSH_ALLOWED_NETWORKS at start-up', () => {
  it('a bad entry stops the process with one line naming the variable and the entry', async () => {
    const bad = spawnHerald('all', { env: { REDIS_URL: redis.url, PUSH_ALLOWED_NETWORKS: '10.0.0.0/8,intranet/16' } });
    expect(await exitWithin(bad.exited, 15_000)).toBe(1);
    const lines = bad.output().split('\n').filter((line) => line.includes('PUSH_ALLOWED_NETWORKS'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/PUSH_ALLOWED_NETWORKS entry \\?"intranet\/16\\?" is not an IPv4 or IPv6 network/);
  });
});
