/**
 * The hot-tenant limit: how many notifications per second one Redis master
 * takes through Herald's publish script. A tenant's keys share one hash slot, so in a
 * cluster one tenant lives on one master, and this is its ceiling however many masters
 * there are.
 *
 * Publishes through `createRedisBroker(…).publish` — the publish script by EVALSHA,
 * auto-pipelined — with `depth` publishes in flight, to one tenant's users in rotation,
 * at steady state (every stream already at its length cap, so each publish also trims).
 * Starts its own redis-server (no persistence, then AOF with `appendfsync always` as the
 * compose file runs it) and reads its CPU from /proc: Redis CPU µs per publish is the
 * figure that does not depend on how fast this one client process is.
 *
 *   npx tsx bench/hot-tenant.ts                       # depth 64, 50000 per round
 *   npx tsx bench/hot-tenant.ts --depth 128 --count 100000 --receivers 4
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { createRedisBroker } from '../src/broker/redis.js';
import { redisClientOptions } from '../src/redis/connection.js';
import { createNamer } from '../src/names/index.js';
import { encodeNotification } from '../src/common/notification.js';
import { startRedisServer, type RedisServer } from '../test/support/redis-server.js';

const { values } = parseArgs({
  options: {
    depth: { type: 'string', default: '64' },
    count: { type: 'string', default: '50000' },
    users: { type: 'string', default: '10' },
    /** Subscriber connections on every user channel, standing in for subscribe servers. */
    receivers: { type: 'string', default: '0' },
  },
});
const depth = Number(values.depth);
const count = Number(values.count);
const users = Number(values.users);
const receivers = Number(values.receivers);
const MAX_LENGTH = 1000; // HISTORY_MAX_LENGTH's default
const CLK_TCK = 100;

/** User + system CPU time of a process so far, in ms. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
}

interface Round {
  persistence: string;
  perSecond: number;
  redisCpuUsPerPublish: number;
  redisBusyPercent: number;
  clientBusyPercent: number;
  historyBytesPerEntry: number;
}

async function measure(persistence: string, server: RedisServer): Promise<Round> {
  const options = redisClientOptions(5000);
  const publisher = new Redis(server.port, '127.0.0.1', options);
  const subscriber = new Redis(server.port, '127.0.0.1', options);
  const listeners = Array.from({ length: receivers }, () => new Redis(server.port, '127.0.0.1'));
  const names = createNamer('bench');
  const broker = createRedisBroker({
    publisher,
    subscriber,
    reportChannel: names.deliveryReportChannel('hot-tenant'),
    reportTimeoutMs: 1000,
    retention: { maxLength: MAX_LENGTH, maxAgeMs: 7 * 24 * 3600 * 1000 },
    logger: console,
  });
  await Promise.all(
    [publisher, subscriber].map((client) => (client.status === 'ready' ? undefined : new Promise((resolve) => client.once('ready', resolve)))),
  );
  const destinations = Array.from({ length: users }, (_, i) => names.destination('hot', 'USER', `user${i}`));
  for (const listener of listeners) await listener.subscribe(...destinations.map((destination) => destination.channel));
  const tenantKey = names.tenantKey('hot');
  const payload = encodeNotification({ text: 'x'.repeat(100), timestamp: 1_700_000_000, audience: 'USER', sender: 'svc' });

  /** `total` publishes, `depth` in flight. */
  const publishMany = async (total: number): Promise<void> => {
    let next = 0;
    await Promise.all(
      Array.from({ length: depth }, async () => {
        while (next < total) {
          const destination = destinations[next++ % users];
          if (!destination) throw new Error('no destination');
          await broker.publish({ destination, tenantKey, payload, countDeliveries: false });
        }
      }),
    );
  };

  // Fill every stream to its cap first: the measured publishes each trim one entry.
  await publishMany(users * MAX_LENGTH + 5000);
  const redisBefore = cpuMs(server.pid);
  const clientBefore = process.cpuUsage();
  const started = process.hrtime.bigint();
  await publishMany(count);
  const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
  const redisMs = cpuMs(server.pid) - redisBefore;
  const client = process.cpuUsage(clientBefore);
  // History memory: one full stream's bytes over its entries.
  const streamBytes = Number(await publisher.call('MEMORY', 'USAGE', destinations[0]?.stream ?? '', 'SAMPLES', '0'));
  const entries = await publisher.xlen(destinations[0]?.stream ?? '');

  await broker.close();
  publisher.disconnect();
  subscriber.disconnect();
  for (const listener of listeners) listener.disconnect();
  return {
    persistence,
    perSecond: Math.round((count * 1000) / elapsedMs),
    redisCpuUsPerPublish: Math.round(((redisMs * 1000) / count) * 10) / 10,
    redisBusyPercent: Math.round((redisMs / elapsedMs) * 100),
    clientBusyPercent: Math.round(((client.user + client.system) / 1000 / elapsedMs) * 100),
    historyBytesPerEntry: Math.round(streamBytes / entries),
  };
}

const rounds: Round[] = [];
for (const [persistence, appendOnly] of [
  ['none', false],
  ['AOF, appendfsync always', true],
] as const) {
  const server = await startRedisServer({ appendOnly });
  try {
    rounds.push(await measure(persistence, server));
  } finally {
    await server.stop();
  }
}

console.log(`Hot tenant: ${count} publishes after ${users * MAX_LENGTH + 5000} to fill ${users} streams to ${MAX_LENGTH}; depth ${depth}; ${receivers} subscriber connections per channel`);
console.log('| Redis persistence | notifications / s | Redis CPU µs / publish | Redis busy | client busy | history bytes / entry |');
console.log('|---|---|---|---|---|---|');
for (const round of rounds) {
  console.log(`| ${round.persistence} | ${round.perSecond} | ${round.redisCpuUsPerPublish} | ${round.redisBusyPercent}% | ${round.clientBusyPercent}% | ${round.historyBytesPerEntry} |`);
}
