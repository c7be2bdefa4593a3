/**
 * SIGTERM on a subscribe process with SSE streams open: each stream gets a last `next`
 * event with a `SERVICE_UNAVAILABLE` error that tells the client to reconnect with
 * `Last-Event-ID`, then `event: complete`, then its end — not a cut connection.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { channels, createTestBroker, waitFor } from '../../support/herald.js';
import { readEvents } from '../../support/http.js';
import { startHeraldProcess, stopAllProcesses, type HeraldProcess } from '../../support/process.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';
import { userToken } from '../../support/tokens.js';
import type { Broker } from '../../../src/broker/types.js';
import { encodeNotification } from '../../../src/common/notification.js';

let redis: RedisServer;
let subscribe: HeraldProcess;
let publisher: Broker;

beforeAll(async () => {
  redis = await startRedisServer();
  subscribe = await startHeraldProcess('subscribe', { env: { REDIS_URL: redis.url } });
  publisher = (await createTestBroker(redis.url)).broker;
});
afterAll(async () => {
  await stopAllProcesses();
  await redis.stop();
});

const QUERY = 'subscription { onNotificationReceived(userName: "ivy") { text } }';

async function openStream(): Promise<ReturnType<typeof readEvents>> {
  const response = await fetch(`http://127.0.0.1:${subscribe.subscribePort}/graphql?query=${encodeURIComponent(QUERY)}`, {
    headers: { Accept: 'text/event-stream', Authorization: `Bearer ${userToken('ivy')}` },
  });
  expect(response.status).toBe(200);
  return readEvents(response);
}

it('ends every open SSE stream with SERVICE_UNAVAILABLE and complete on SIGTERM', async () => {
  const streams = [await openStream(), await openStream()];
  const channel = channels.audienceChannel('acme', 'USER', 'ivy');
  await waitFor(async () => (await redis.numsub(channel)) === 1, 'both SSE subscriptions');
  await publisher.publish({
    destination: channels.destination('acme', 'USER', 'ivy'),
    tenantKey: channels.tenantKey('acme'),
    payload: encodeNotification({ text: 'before shutdown', timestamp: 1_700_000_000, audience: 'USER', sender: 'test' }),
  });
  for (const stream of streams) expect(await stream.next()).toMatchObject({ event: 'next', id: expect.any(String) });

  const exited = subscribe.stop('SIGTERM');
  for (const stream of streams) {
    const last = await stream.next();
    expect(last.event).toBe('next');
    expect(last.id).toBeUndefined();
    expect(JSON.parse(last.data)).toEqual({
      errors: [{ message: expect.stringContaining('Last-Event-ID'), extensions: { code: 'SERVICE_UNAVAILABLE' } }],
    });
    expect(await stream.next()).toEqual({ id: undefined, event: 'complete', data: '' });
    await expect(stream.next()).rejects.toThrow('the event stream ended');
  }
  expect(await exited).toBe(0);
});
