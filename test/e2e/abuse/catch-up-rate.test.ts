/**
 * Catching up runs as fast over many streams as over one (once, a user in 50 stores
 * read 48–198 notifications/s where one store gave ~1,000/s — a page over 52 streams
 * held 3 entries when the stores' notifications came a store at a time). The same
 * number of notifications is resumed from one store and from 50, each in the same run,
 * by the real graphql-ws client from a real subscribe process on a real Redis; what is
 * compared is the ratio of the two rates, which a loaded machine slows alike, never a
 * rate. Each history is written straight into Redis in the publish script's layout.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Audience } from '../../../src/common/notification.js';
import { catchUp } from '../../support/catch-up.js';
import { fillHistory, type FilledHistory } from '../../support/history-fill.js';
import { startHeraldProcess, stopAllProcesses, type HeraldProcess } from '../../support/process.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';
import { userToken } from '../../support/tokens.js';

const COUNT = 20_000;
const STORES = 50;
const ROUNDS = 3;

let seed = 22;
/** A fixed sequence of pseudo-random numbers in [0, 1). */
const random = (): number => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed / 2 ** 31;
};

interface Shape {
  readonly tenant: string;
  readonly stores: readonly string[];
  readonly history: FilledHistory;
}

const SHAPES = {
  'one store': { stores: 1, pick: () => 0 },
  '50 stores, a store at a time': { stores: STORES, pick: (n: number) => Math.floor((n * STORES) / COUNT) },
  '50 stores, at random': { stores: STORES, pick: () => Math.floor(random() * STORES) },
} as const;
type ShapeName = keyof typeof SHAPES;

let redis: RedisServer;
let subscribe: HeraldProcess;
const shapes = new Map<ShapeName, Shape>();

beforeAll(async () => {
  redis = await startRedisServer();
  subscribe = await startHeraldProcess('subscribe', { entry: 'dist', env: { REDIS_URL: redis.url } });
  for (const [index, [name, { stores: count, pick }]] of Object.entries(SHAPES).entries()) {
    const tenant = `catch-up-${index}`;
    const stores = Array.from({ length: count }, (_, n) => `store-${n}`);
    const destinations = stores.map((store): [Audience, string] => ['STORE', store]);
    shapes.set(name as ShapeName, { tenant, stores, history: await fillHistory(redis.client(), { tenant, destinations, count: COUNT, pick }) });
  }
}, 60_000);
afterAll(async () => {
  await stopAllProcesses();
  await redis?.stop();
});

/** Resumes `shape`'s whole history (or its first `expected`); how long it took, in ms. */
async function resume(name: ShapeName, expected = COUNT): Promise<number> {
  const shape = shapes.get(name);
  if (!shape) throw new Error(`no history for ${name}`);
  const { ids, ms } = await catchUp({
    url: `ws://127.0.0.1:${subscribe.subscribePort}/graphql`,
    token: userToken('reader', { tenant: shape.tenant, stores: shape.stores }),
    userName: 'reader',
    since: shape.history.since,
    expected,
  });
  // Every one, once, in order: the merge over 50 streams gives exactly what one does.
  expect(ids).toEqual(shape.history.ids.slice(0, expected));
  return ms;
}

describe('catching up over 50 stores', () => {
  it('runs at half the one-store rate or better, every notification once and in order', async () => {
    const names = Object.keys(SHAPES) as ShapeName[];
    // The process's first thousands of notifications run unoptimised code: not measured.
    for (const name of names) await resume(name, 5000);
    const took = new Map<ShapeName, number>(names.map((name) => [name, 0]));
    // Taking turns, each first in one round, so a burst of load from elsewhere (or the
    // collector, after a round's checks) falls on each alike.
    for (let round = 0; round < ROUNDS; round++) {
      for (const name of [...names.slice(round % names.length), ...names.slice(0, round % names.length)]) {
        took.set(name, (took.get(name) ?? 0) + (await resume(name)));
      }
    }
    const rate = (name: ShapeName): number => Math.round((ROUNDS * COUNT * 1000) / (took.get(name) ?? 1));
    const oneStore = rate('one store');
    console.info(`catch-up: ${names.map((name) => `${name} ${rate(name)}/s (${(rate(name) / oneStore).toFixed(2)})`).join(', ')}`);
    for (const name of names) expect(rate(name) / oneStore, `${name}: ${rate(name)}/s against ${oneStore}/s`).toBeGreaterThanOrEqual(0.5);
  }, 180_000);
});
