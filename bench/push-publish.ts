/**
 * What queuing the push costs the publish path: `sendNotification` latency through the
 * Sender on a real Redis, with the push queue (on one node the publish script writes the
 * entry itself, before the answer) and without it (`push: NEVER`), in alternating rounds
 * so drift hits both; then batches of 1000 (`sendNotifications`) the same way.
 *
 *   npx tsx bench/push-publish.ts [count=2000]
 */
import { Redis } from 'ioredis';
import { createTokenVerifier } from '../src/auth/index.js';
import { connectBroker } from '../src/servers/herald.js';
import { createNamer } from '../src/names/index.js';
import { createPushKeys } from '../src/push/keys.js';
import { createPushQueue } from '../src/push/queue.js';
import { createSender } from '../src/core/send.js';
import { readConfig } from '../src/config/index.js';
import { startRedisServer } from '../test/support/redis-server.js';
import { serviceToken, TEST_SECRET } from '../test/support/tokens.js';

const count = Number(process.argv[2] ?? 2000);
const redisServer = await startRedisServer();
const config = readConfig({ REDIS_URL: redisServer.url });
const namer = createNamer('bench');
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
const { broker, subscriber, publisher } = connectBroker(config, namer, quiet);
const commands = new Redis(redisServer.url);
await new Promise((resolve) => setTimeout(resolve, 300));
const sender = createSender({ broker, namer, maxTextLength: 2000, idempotencyWindowMs: 60_000, pushQueue: createPushQueue({ redis: commands, keys: createPushKeys('bench') }) });
const principal = createTokenVerifier({ secret: TEST_SECRET }).verify(serviceToken({ tenant: 'acme' }));

const samples: Record<'WHEN_OFFLINE' | 'NEVER', number[]> = { WHEN_OFFLINE: [], NEVER: [] };
for (let round = 0; round < 10; round++) {
  for (const push of ['WHEN_OFFLINE', 'NEVER'] as const) {
    for (let n = 0; n < count / 10; n++) {
      const start = performance.now();
      await sender.send(principal, { to: 'ann', text: 'a notification of typical length', push }, { countDeliveries: false });
      samples[push].push(performance.now() - start);
    }
  }
}
const percentile = (values: number[], p: number): number => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) * p)] ?? NaN;
for (const [push, values] of Object.entries(samples)) {
  console.log(`push ${push.padEnd(12)} n=${values.length} p50 ${percentile(values, 0.5).toFixed(3)} ms  p99 ${percentile(values, 0.99).toFixed(3)} ms`);
}
const batches: Record<'WHEN_OFFLINE' | 'NEVER', number[]> = { WHEN_OFFLINE: [], NEVER: [] };
for (let round = 0; round < 10; round++) {
  for (const push of ['WHEN_OFFLINE', 'NEVER'] as const) {
    const batch = Array.from({ length: 1000 }, (_, n) => ({ to: `user-${n % 50}`, text: 'a notification of typical length', push }));
    const start = performance.now();
    await sender.sendBatch(principal, batch, { countDeliveries: false });
    batches[push].push(performance.now() - start);
  }
}
for (const [push, values] of Object.entries(batches)) {
  console.log(`batch of 1000, push ${push.padEnd(12)} n=${values.length} p50 ${percentile(values, 0.5).toFixed(1)} ms  max ${Math.max(...values).toFixed(1)} ms`);
}
await broker.close();
for (const client of [subscriber, publisher, commands]) client?.disconnect();
await redisServer.stop();
