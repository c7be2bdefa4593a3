/**
 * What Herald keeps in Redis per notification: `npx tsx bench/redis-memory.ts` (run
 * `npm run build` first). For each setting in turn it starts a `redis-server` of its own
 * and a compiled publish server alone, sends `NOTIFICATIONS` notifications
 * (`sendNotifications`, 500 a call, `WHEN_OFFLINE`, 20 to each of `USERS` users nobody
 * listens for, a text of `TEXT_LENGTH` characters), and prints Redis' `used_memory` gained
 * per notification, the keys made, and `MEMORY USAGE` of one of each kind of key.
 *
 * Three settings, so that each part's share is their difference:
 * - as deployed by default (history, the ledger, the push entry of a notification nobody heard);
 * - `LEDGER_MAX_EVENTS=0`: no ledger;
 * - `LEDGER_MAX_EVENTS=0` and `push: NEVER`: no ledger and no push entry (history alone).
 *
 * The push entries stay in the stream because no push worker runs here; with a worker, an
 * entry is deleted once it is handled, so the push stream holds only a backlog.
 *
 *   NOTIFICATIONS=50000 TEXT_LENGTH=200 npx tsx bench/redis-memory.ts
 */
import { spawn } from 'node:child_process';
import { Redis } from 'ioredis';
import jwt from 'jsonwebtoken';
import { freePort, startRedisServer } from '../test/support/redis-server.js';

const ROOT = new URL('..', import.meta.url).pathname;
const NOTIFICATIONS = Number(process.env['NOTIFICATIONS'] ?? '20000');
const USERS = Math.max(1, Math.floor(NOTIFICATIONS / 20));
const TEXT_LENGTH = Number(process.env['TEXT_LENGTH'] ?? '80');
const BATCH = 500;
const SECRET = 'bench-secret-that-is-at-least-32-bytes-long!';
const token = jwt.sign({ sub: 'bench', tenant: 'acme', scope: 'notifications:publish' }, SECRET, { algorithm: 'HS256', expiresIn: 3600 });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function post(url: string, query: string, variables: object): Promise<unknown> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const answer = (await response.json()) as { data?: unknown; errors?: unknown };
  if (answer.errors !== undefined) throw new Error(JSON.stringify(answer.errors));
  return answer.data;
}

const usedMemory = async (redis: Redis): Promise<number> => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]);

/** `MEMORY USAGE` of the first key matching `pattern`, in bytes. */
async function usageOf(redis: Redis, pattern: string): Promise<string> {
  const [, keys] = await redis.scan('0', 'MATCH', pattern, 'COUNT', 100_000);
  const key = keys[0];
  return key === undefined ? '—' : `${String(await redis.memory('USAGE', key, 'SAMPLES', '0'))} B`;
}

async function measure(label: string, env: Record<string, string>, push: 'WHEN_OFFLINE' | 'NEVER'): Promise<void> {
  const server = await startRedisServer();
  const redis = new Redis(server.url);
  const port = await freePort();
  const publish = spawn(process.execPath, ['dist/main.js', 'publish'], {
    cwd: ROOT,
    env: { ...process.env, ...env, REDIS_URL: server.url, JWT_SECRET: SECRET, NODE_ENV: 'production', HOST: '127.0.0.1', PUBLISH_PORT: String(port), PUBLISH_GRPC_PORT: String(await freePort()) },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}/graphql`;
  const send = 'mutation B($n: [NotificationInput!]!) { sendNotifications(notifications: $n) { id } }';
  const text = 'x'.repeat(TEXT_LENGTH);
  try {
    for (let tries = 0; ; tries++) {
      try {
        await post(url, send, { n: [{ to: 'warm-up', text, push }] });
        break;
      } catch (error) {
        if (tries > 100) throw error;
        await sleep(100);
      }
    }
    const [before, keysBefore] = [await usedMemory(redis), await redis.dbsize()];
    for (let sent = 0; sent < NOTIFICATIONS; sent += BATCH) {
      const batch = Array.from({ length: Math.min(BATCH, NOTIFICATIONS - sent) }, (_, n) => ({ to: `user${(sent + n) % USERS}`, text, push }));
      await post(url, send, { n: batch });
    }
    const [after, keysAfter] = [await usedMemory(redis), await redis.dbsize()];
    console.info(
      `${label}: ${((after - before) / NOTIFICATIONS).toFixed(0)} B of Redis per notification (${NOTIFICATIONS} to ${USERS} users, ${TEXT_LENGTH}-character text); ` +
        `${keysAfter - keysBefore} keys made; MEMORY USAGE: a ledger ${await usageOf(redis, '*:ledger:*')}, ` +
        `a user's history stream of ${Math.ceil(NOTIFICATIONS / USERS)} ${await usageOf(redis, '*:history:user:user1')}, the push stream ${await usageOf(redis, '*push:stream*')}`,
    );
  } finally {
    publish.kill('SIGTERM');
    await new Promise((resolve) => publish.once('exit', resolve));
    redis.disconnect();
    await server.stop();
  }
}

await measure('by default', {}, 'WHEN_OFFLINE');
await measure('LEDGER_MAX_EVENTS=0', { LEDGER_MAX_EVENTS: '0' }, 'WHEN_OFFLINE');
await measure('LEDGER_MAX_EVENTS=0, push NEVER', { LEDGER_MAX_EVENTS: '0' }, 'NEVER');
