/**
 * The broker's own checks on its Redis connections, against a real redis-server:
 * - a publish whose reply belongs to another command (the connection is out of step) is
 *   never acknowledged: it fails as OUTCOME_UNKNOWN and the connection is replaced;
 * - a subscriber connection that goes silent while idle is replaced, and the channel is
 *   heard again (the interrupted/resubscribed path runs);
 * - the push worker's two connections (commands, and the blocking reader) are replaced
 *   when they go silent, and it goes on working the queue.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OutcomeUnknownError } from '../../src/common/failures.js';
import { encodeNotification } from '../../src/common/notification.js';
import { readConfig } from '../../src/config/index.js';
import { startPushWorker } from '../../src/servers/herald.js';
import { createPushKeys } from '../../src/push/keys.js';
import { createPushQueue } from '../../src/push/queue.js';
import { closeAllFaultProxies, startFaultProxy } from '../support/fault-proxy.js';
import { channels, createTestBroker, quietLogger, stopAll, waitFor } from '../support/herald.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';

let redis: RedisServer;

beforeAll(async () => {
  redis = await startRedisServer();
});
afterAll(async () => {
  await stopAll();
  await closeAllFaultProxies();
  await redis.stop();
});

const request = (text: string) => ({
  destination: channels.destination('acme', 'USER', 'alice'),
  tenantKey: channels.tenantKey('acme'),
  payload: encodeNotification({ text, timestamp: 1, audience: 'USER', sender: 'test' }),
  countDeliveries: false,
});

describe('Redis connection liveness', () => {
  it('a publish answered with another command’s reply is not acknowledged, and its connection is replaced', async () => {
    const { broker, publisher } = await createTestBroker(redis.url);
    if (!publisher) throw new Error('a Redis broker has a publisher connection');
    const first = await broker.publish(request('before'));
    const stream = publisher.stream;
    // A command ioredis does not know it sent: its reply ('PONG') comes first and is
    // matched to the next command, as after bytes lost between Herald and Redis.
    stream.write('*1\r\n$4\r\nPING\r\n');
    await expect(broker.publish(request('out of step'))).rejects.toBeInstanceOf(OutcomeUnknownError);
    await waitFor(() => publisher.stream !== stream && broker.isReady(), 'the connection to be replaced');
    const after = await broker.publish(request('after'));
    expect(after.id).not.toBe(first.id);
    expect(after.id).toMatch(/^[0-9a-z]+_\d+-\d+$/);
  });

  it('an idle subscriber connection that goes silent is replaced and its channels heard again', async () => {
    const proxy = await startFaultProxy(redis.port);
    const { broker, subscriber } = await createTestBroker(`redis://127.0.0.1:${proxy.port}`);
    if (!subscriber) throw new Error('a Redis broker has a subscriber connection');
    const events: string[] = [];
    const heard: string[] = [];
    broker.listen((_channel, message) => (heard.push(message.id), 1), {
      interrupted: () => events.push('interrupted'),
      resubscribed: () => events.push('resubscribed'),
    });
    const { channel } = channels.destination('acme', 'USER', 'bob');
    await broker.subscribe(channel);
    const before = proxy.accepted;
    proxy.fault({ kind: 'silent' });
    // The test broker's command timeout is 1 s and the PING comes every second.
    await waitFor(() => events.includes('resubscribed') && broker.isReady(), 'the subscriber to be replaced and resubscribed', 10_000);
    expect(events).toEqual(['interrupted', 'resubscribed']);
    expect(proxy.accepted).toBeGreaterThanOrEqual(before + 2);
    await waitFor(async () => (await redis.numsub(channel)) >= 1, 'the channel on the new connection');
    const { broker: publisher } = await createTestBroker(redis.url);
    const sent = await publisher.publish({ ...request('to bob'), destination: channels.destination('acme', 'USER', 'bob') });
    await waitFor(() => heard.includes(sent.id), 'the notification on the new connection');
  });

  it('a push worker whose connections go silent replaces both and goes on working the queue', async () => {
    const proxy = await startFaultProxy(redis.port);
    const url = `redis://127.0.0.1:${proxy.port}`;
    const config = readConfig({ REDIS_URL: url, REDIS_COMMAND_TIMEOUT_MS: '1000', CHANNEL_PREFIX: 'liveness' });
    const worker = await startPushWorker(config, quietLogger);
    try {
      const before = proxy.accepted;
      proxy.fault({ kind: 'silent' });
      // Commands: a PING every second, 1 s to answer. The reader: its blocking read plus 1 s.
      await waitFor(() => proxy.accepted >= before + 2, 'both push connections to be replaced', 20_000);
      const queue = createPushQueue({ redis: redis.client(), keys: createPushKeys('liveness') });
      const done = worker.counters.entriesDone;
      await queue.enqueue({ id: 'e_1-1', tenant: 'acme', audience: 'USER', to: 'nobody', text: 'hi', timestamp: 1, sender: 'test' }, 'ALWAYS');
      await waitFor(() => worker.counters.entriesDone > done, 'the worker to finish the entry queued after the fault', 15_000);
    } finally {
      await worker.stop();
    }
  }, 60_000);
});
