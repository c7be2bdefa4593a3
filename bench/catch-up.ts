/**
 * Catch-up rate: one user resumes from a cursor with `CATCH_UP_COUNT` notifications
 * (default 50,000) after it, in one store, or spread over 50 stores (round robin, in
 * blocks of a store at a time, at random), read over WebSocket by the real graphql-ws
 * client from a real subscribe process on a local Redis. Each history is written
 * straight into Redis in the publish script's layout (`test/support/history-fill.ts`).
 * Prints notifications per second for each (after a warm-up of each), and each one's
 * ratio to the one-store rate.
 *
 *   npm run build && npx tsx bench/catch-up.ts
 */
import type { Audience } from '../src/common/notification.js';
import { catchUp } from '../test/support/catch-up.js';
import { fillHistory } from '../test/support/history-fill.js';
import { startHeraldProcess, stopAllProcesses } from '../test/support/process.js';
import { startRedisServer } from '../test/support/redis-server.js';
import { userToken } from '../test/support/tokens.js';

const COUNT = Number(process.env['CATCH_UP_COUNT'] ?? '50000');
const STORES = 50;

interface Shape {
  readonly name: string;
  readonly stores: number;
  readonly pick: (n: number) => number;
}

let seed = 42;
const random = (): number => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed / 2 ** 31;
};
const shapes: Shape[] = [
  { name: '1 store', stores: 1, pick: () => 0 },
  { name: `${STORES} stores, round robin`, stores: STORES, pick: (n) => n % STORES },
  { name: `${STORES} stores, a store at a time`, stores: STORES, pick: (n) => Math.floor((n * STORES) / COUNT) },
  { name: `${STORES} stores, at random`, stores: STORES, pick: () => Math.floor(random() * STORES) },
];

const redis = await startRedisServer();
try {
  const subscribe = await startHeraldProcess('subscribe', { entry: 'dist', env: { REDIS_URL: redis.url } });
  const url = `ws://127.0.0.1:${subscribe.subscribePort}/graphql`;
  const run = async (tenant: string, shape: Shape, count: number) => {
    const stores = Array.from({ length: shape.stores }, (_, n) => `store-${n}`);
    const destinations = stores.map((store): [Audience, string] => ['STORE', store]);
    const { since } = await fillHistory(redis.client(), { tenant, destinations, count, pick: shape.pick });
    return catchUp({ url, token: userToken('reader', { tenant, stores }), userName: 'reader', since, expected: count });
  };
  // Warmed up first: the process's first thousands of notifications run unoptimised code.
  for (const [index, shape] of shapes.entries()) await run(`warm${index}`, shape, 5000);
  let baseline = 0;
  for (const [index, shape] of shapes.entries()) {
    const { rate, ms } = await run(`bench${index}`, shape, COUNT);
    baseline ||= rate;
    console.info(`${shape.name}: ${COUNT} in ${(ms / 1000).toFixed(1)} s, ${Math.round(rate)}/s (${(rate / baseline).toFixed(2)} of one store)`);
  }
} finally {
  await stopAllProcesses();
  await redis.stop();
}
