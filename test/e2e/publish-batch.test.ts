/**
 * The publishes of one turn of the event loop go to Redis as one call of the publish
 * script (`broker/redis-publish-batch.ts`), against a real redis-server watched with
 * MONITOR: one call for a turn's publishes (two past 64), the ids in the order of the
 * requests, and one publish that fails inside the call fails alone.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeNotification } from '../../src/common/notification.js';
import { channels, createTestBroker, stopAll } from '../support/herald.js';
import { startRedisServer, untilSeen, type Monitor, type RedisServer } from '../support/redis-server.js';

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedisServer();
});
afterAll(async () => {
  await stopAll();
  await redis.stop();
});

const request = (user: string, text: string) => ({
  destination: channels.destination('acme', 'USER', user),
  tenantKey: channels.tenantKey('acme'),
  payload: encodeNotification({ text, timestamp: 1, audience: 'USER', sender: 'test' }),
  countDeliveries: false,
});

/** The script calls clients sent (EVAL or EVALSHA), as MONITOR showed them. */
const scriptCalls = (monitor: Monitor): number => monitor.commands.filter((command, n) => monitor.sources[n] !== 'lua' && /^"eval(sha)?"/i.test(command)).length;

describe('the publishes of one turn', () => {
  it('go as one script call, and get their ids in the order they were made', async () => {
    const { broker } = await createTestBroker(redis.url);
    const client = new Redis(redis.url);
    await broker.publish(request('ann', 'loads the script'));
    const monitor = await redis.monitor();
    const published = await Promise.all(Array.from({ length: 20 }, (_, n) => broker.publish(request('ann', `n${n}`))));
    await untilSeen(monitor, client);
    expect(scriptCalls(monitor)).toBe(1);
    monitor.stop();
    const sequence = published.map(({ id }) => Number(id.split('-').pop()));
    expect(sequence).toEqual([...sequence].sort((a, b) => a - b));
    expect(new Set(sequence).size).toBe(20);
    const history = await client.xrange(channels.destination('acme', 'USER', 'ann').stream, '-', '+');
    expect(history.slice(-20).map(([, fields]) => JSON.parse(fields[1] ?? '{}').text)).toEqual(Array.from({ length: 20 }, (_, n) => `n${n}`));
    client.disconnect();
  });

  it('past 64 in a turn, go as more calls', async () => {
    const { broker } = await createTestBroker(redis.url);
    const client = new Redis(redis.url);
    await broker.publish(request('bea', 'loads the script'));
    const monitor = await redis.monitor();
    await Promise.all(Array.from({ length: 100 }, (_, n) => broker.publish(request('bea', `n${n}`))));
    await untilSeen(monitor, client);
    expect(scriptCalls(monitor)).toBe(2);
    monitor.stop();
    client.disconnect();
  });

  it('one that fails inside the call fails alone: the others are published and stored', async () => {
    const { broker } = await createTestBroker(redis.url);
    const client = new Redis(redis.url);
    const broken = channels.destination('acme', 'USER', 'cid').stream;
    await client.set(broken, 'not a stream'); // its XLEN answers WRONGTYPE
    const [before, failed, after] = await Promise.allSettled([broker.publish(request('dee', 'a')), broker.publish(request('cid', 'b')), broker.publish(request('dee', 'c'))]);
    expect(before).toMatchObject({ status: 'fulfilled' });
    expect(after).toMatchObject({ status: 'fulfilled' });
    expect(failed).toMatchObject({ status: 'rejected', reason: expect.objectContaining({ message: expect.stringMatching(/WRONGTYPE/) }) });
    const stored = await client.xrange(channels.destination('acme', 'USER', 'dee').stream, '-', '+');
    expect(stored.map(([, fields]) => JSON.parse(fields[1] ?? '{}').text)).toEqual(['a', 'c']);
    expect(await client.get(broken)).toBe('not a stream');
    client.disconnect();
  });
});
