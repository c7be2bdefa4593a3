/**
 * A push stream cut into shards, on one Redis (the layout a Cluster gets, here where it
 * is cheap to watch): a worker reads every shard on its own reader, each tenant's entries
 * stay on its shard and are done in order, and two workers share the shards.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { PushNotification } from '../../../src/push/entry.js';
import { createWebhookSender } from '../../../src/push/senders/webhook.js';
import { localNetworkPolicy, startHttpRecorder, type HttpRecorder } from '../../support/push-servers.js';
import { createPushRig, duplicates, eventually, quietLogger, type PushRig } from '../../support/push-worker.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';

const WEBHOOK_SECRET = `whsec_${Buffer.alloc(32, 5).toString('base64')}`;

let server: RedisServer;
let hooks: HttpRecorder;
const rigs: PushRig[] = [];

beforeAll(async () => {
  [server, hooks] = await Promise.all([startRedisServer(), startHttpRecorder()]);
  hooks.answer = () => ({ status: 204 });
});
afterEach(async () => {
  await Promise.all(rigs.splice(0).map((rig) => rig.stopAll()));
});
afterAll(async () => {
  await hooks.close();
  await server.stop();
});

const senders = () => ({ WEBHOOK: createWebhookSender({ secret: WEBHOOK_SECRET, dryRun: false, logger: quietLogger, networkPolicy: localNetworkPolicy }) });
const notification = (tenant: string, n: number): PushNotification => ({ id: `e_${n}-1`, tenant, audience: 'USER', to: 'bob', text: `n ${n}`, timestamp: 1_700_000_000, sender: 'test' });
/** The notification ids pushed to `tenant`'s bob, in arrival order. */
const pushed = (prefix: string, tenant: string): string[] =>
  hooks.requests.filter((request) => request.path === `/${prefix}/${tenant}`).map((request) => String((JSON.parse(request.body.toString('utf8')) as { id: unknown }).id));

describe('a sharded push stream', () => {
  it("one worker reads all 4 shards; each tenant's entries are on its one shard and pushed in order", async () => {
    const r = createPushRig(server, 's1', 4);
    rigs.push(r);
    const tenants = Array.from({ length: 12 }, (_, n) => `tenant-${n}`);
    for (const tenant of tenants) await r.devices.register(tenant, 'bob', { kind: 'WEBHOOK', url: `${hooks.url}/s1/${tenant}` });
    for (let n = 0; n < 5; n++) for (const tenant of tenants) await r.queue.enqueue(notification(tenant, n), 'ALWAYS');
    const lengths = await Promise.all(r.keys.streams.map((stream) => r.redis.xlen(stream)));
    expect(lengths.filter((length) => length > 0).length).toBeGreaterThan(1);
    for (const tenant of tenants) expect(await r.redis.xlen(r.keys.streams[r.keys.shardOf(tenant)] ?? '')).toBeGreaterThanOrEqual(5);

    // One slot per tenant: a tenant's entries are worked on one at a time, so in stream order.
    const worker = await r.startWorker(senders(), { tenantConcurrency: 1, blockMs: 200 });
    await eventually(async () => (await r.backlog()) === 0 && tenants.every((tenant) => pushed('s1', tenant).length === 5), 'every push');
    for (const tenant of tenants) expect(pushed('s1', tenant)).toEqual([0, 1, 2, 3, 4].map((n) => `e_${n}-1`));
    expect(await worker.lag()).toEqual({ unread: 0, pending: 0 });
  });

  it('two workers share the shards: every push once; stop() ends every blocked read at once', async () => {
    const r = createPushRig(server, 's2', 4);
    rigs.push(r);
    const tenants = Array.from({ length: 8 }, (_, n) => `tenant-${n}`);
    for (const tenant of tenants) await r.devices.register(tenant, 'bob', { kind: 'WEBHOOK', url: `${hooks.url}/s2/${tenant}` });
    const workers = await Promise.all([1, 2].map(() => r.startWorker(senders())));
    for (let n = 0; n < 10; n++) for (const tenant of tenants) await r.queue.enqueue(notification(tenant, n), 'ALWAYS');
    await eventually(async () => (await r.backlog()) === 0 && tenants.every((tenant) => pushed('s2', tenant).length >= 10), 'every push');
    for (const tenant of tenants) expect(duplicates(pushed('s2', tenant))).toEqual({});
    expect(workers.every((worker) => worker.counters.entriesDone > 0)).toBe(true);
    // Reads block for 5 s by default: stopping well within that means each was unblocked.
    const stopping = Date.now();
    await Promise.all(workers.map((worker) => worker.stop()));
    expect(Date.now() - stopping).toBeLessThan(2500);
  });
});
