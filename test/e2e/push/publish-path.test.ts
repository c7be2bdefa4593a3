/**
 * The publish path's half of the push guarantee (no acknowledged notification loses its
 * push): the push entry is queued before the publish is answered — on one node by the
 * publish script itself, atomically — a failed enqueue after the publish is reported
 * rather than swallowed, and the publisher's retry with the same idempotency key queues it.
 * Real Redis; the failing queue is a real ioredis client whose connection is gone.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisClientOptions } from '../../../src/redis/connection.js';
import { decodePushEntry } from '../../../src/push/entry.js';
import { createPushKeys } from '../../../src/push/keys.js';
import { createPushQueue } from '../../../src/push/queue.js';
import { createSender } from '../../../src/core/send.js';
import { channels, createTestBroker, stopAll, verifier } from '../../support/herald.js';
import { startRedisServer, untilSeen, type RedisServer } from '../../support/redis-server.js';
import { serviceToken } from '../../support/tokens.js';
import { thrown } from '../../support/thrown.js';
import { theStream } from '../../support/push-worker.js';

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedisServer();
});
afterAll(async () => {
  await stopAll();
  await redis.stop();
});

const keys = createPushKeys('path');
const principal = () => verifier.verify(serviceToken({ tenant: 'acme' }));

/** A real client whose connection is gone, with no offline queue: its commands fail at once. */
async function lostConnection(): Promise<Redis> {
  const lost = new Redis(redis.url, redisClientOptions(1000));
  await new Promise((resolve) => lost.once('ready', resolve));
  lost.disconnect();
  return lost;
}

async function queued(client: Redis) {
  const entries = await client.xrange(theStream(keys), '-', '+');
  return entries.map(([, fields]) => decodePushEntry(fields));
}

describe('the publish path', () => {
  it('queues one entry per USER or TOPIC notification before it answers, none for NEVER, STORE or COMPANY', async () => {
    const { broker } = await createTestBroker(redis.url);
    const client = redis.client();
    const sender = createSender({ broker, namer: channels, maxTextLength: 100, idempotencyWindowMs: 60_000, pushQueue: createPushQueue({ redis: client, keys }) });
    const user = await sender.send(principal(), { to: 'ann', text: 'a' });
    const topic = await sender.send(principal(), { to: 'jazz', text: 'b', audience: 'TOPIC', push: 'ALWAYS' });
    await sender.send(principal(), { to: 'ann', text: 'c', push: 'NEVER' });
    await sender.sendBatch(principal(), [
      { to: 'store-1', text: 'd', audience: 'STORE', push: 'ALWAYS' },
      { to: 'acme', text: 'e', audience: 'COMPANY' },
    ]);
    // no waiting: each entry was in the stream when its send resolved
    expect(await queued(client)).toEqual([
      expect.objectContaining({ policy: 'WHEN_OFFLINE', target: { kind: 'user', user: 'ann' }, notification: expect.objectContaining({ id: user.id, text: 'a', tenant: 'acme', sender: 'billing' }) }),
      expect.objectContaining({ policy: 'ALWAYS', target: { kind: 'topic', topic: 'jazz' }, notification: expect.objectContaining({ id: topic.id, audience: 'TOPIC' }) }),
    ]);
    await client.del(theStream(keys));
  });

  it('refuses an unknown policy before sending anything', async () => {
    const { broker } = await createTestBroker(redis.url);
    const sender = createSender({ broker, namer: channels, maxTextLength: 100, idempotencyWindowMs: 60_000 });
    const error = thrown(() => sender.send(principal(), { to: 'ann', text: 'a', push: 'SOMETIMES' }));
    expect(error).toMatchObject({ code: 'BAD_USER_INPUT', message: 'push must be one of ALWAYS, NEVER, WHEN_OFFLINE' });
  });

  it('writes the entry inside the publish on one node: a push queue whose connection is gone loses nothing, and no XADD of its own is sent', async () => {
    const { broker } = await createTestBroker(redis.url);
    const lost = await lostConnection();
    const client = redis.client();
    const monitor = await redis.monitor();
    const sender = createSender({ broker, namer: channels, maxTextLength: 100, idempotencyWindowMs: 60_000, pushQueue: createPushQueue({ redis: lost, keys }) });
    const offline = await sender.send(principal(), { to: 'bob', text: 'while away' });
    const always = await sender.send(principal(), { to: 'jazz', text: 'news', audience: 'TOPIC', push: 'ALWAYS' }, { countDeliveries: false });
    await untilSeen(monitor, client);
    expect(await queued(client)).toEqual([
      expect.objectContaining({ policy: 'WHEN_OFFLINE', target: { kind: 'user', user: 'bob' }, notification: expect.objectContaining({ id: offline.id, text: 'while away', sender: 'billing' }) }),
      expect.objectContaining({ policy: 'ALWAYS', target: { kind: 'topic', topic: 'jazz' }, notification: expect.objectContaining({ id: always.id }) }),
    ]);
    // Both XADDs to the push stream ran inside the publish script ("lua"), none from a client.
    const pushAdds = monitor.commands.flatMap((command, n) => (/^"xadd"/i.test(command) && command.includes(`"${theStream(keys)}"`) ? [monitor.sources[n]] : []));
    expect(pushAdds).toEqual(['lua', 'lua']);
    monitor.stop();
    await client.del(theStream(keys));
  });

  it('leaves a WHEN_OFFLINE notification that a subscribe server heard to the count: queued after it when it reached nobody, not at all when it reached the user', async () => {
    const { broker } = await createTestBroker(redis.url);
    const listening = (await createTestBroker(redis.url)).broker;
    let reached = 0;
    listening.listen(() => reached);
    await listening.subscribe(channels.destination('acme', 'USER', 'cara').channel);
    const client = redis.client();
    const sender = createSender({ broker, namer: channels, maxTextLength: 100, idempotencyWindowMs: 60_000, pushQueue: createPushQueue({ redis: client, keys }) });

    const live = await sender.send(principal(), { to: 'cara', text: 'seen' });
    expect(live.receivedUsers).toBe(0);
    const [entry] = await queued(client);
    expect(entry?.notification).toMatchObject({ id: live.id, to: 'cara' });
    await client.del(theStream(keys));

    reached = 1;
    expect((await sender.send(principal(), { to: 'cara', text: 'seen' })).receivedUsers).toBe(1);
    expect(await client.xlen(theStream(keys))).toBe(0);
  });

  it('reports OUTCOME_UNKNOWN when the enqueue after the publish fails (a sharded push stream, as on a Cluster), and the retry with the same idempotency key queues it', async () => {
    const sharded = createPushKeys('path-sharded', { streamShards: 2 });
    const stream = sharded.streams[sharded.shardOf('acme')] ?? '';
    const { broker } = await createTestBroker(redis.url);
    const failing = createSender({ broker, namer: channels, maxTextLength: 100, idempotencyWindowMs: 60_000, pushQueue: createPushQueue({ redis: await lostConnection(), keys: sharded }) });
    const error: unknown = await failing.send(principal(), { to: 'bob', text: 'lost push?', idempotencyKey: 'order-7' }).then(() => undefined, (caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'OUTCOME_UNKNOWN' });
    expect((error as Error).message).toMatch(/sent live and stored, but its push could not be queued: retry with the same idempotencyKey/);

    const client = redis.client();
    expect(await client.xlen(stream)).toBe(0);
    const working = createSender({ broker, namer: channels, maxTextLength: 100, idempotencyWindowMs: 60_000, pushQueue: createPushQueue({ redis: client, keys: sharded }) });
    const retry = await working.send(principal(), { to: 'bob', text: 'lost push?', idempotencyKey: 'order-7' });
    expect(retry.duplicate).toBe(true);
    const [[, fields] = ['', []]] = await client.xrange(stream, '-', '+');
    expect(decodePushEntry(fields)?.notification).toMatchObject({ id: retry.id, to: 'bob' });
  });
});
