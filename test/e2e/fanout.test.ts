/**
 * The fan-out path: one rendering per event and operation, each subscriber's own id
 * spliced in, different selection sets answered exactly, slow readers cut off without
 * slowing the others, and the batch mutation.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { channels, createTestBroker, startPublishServer, startSubscribeServer, stopAll, waitFor, type RunningSubscribeServer } from '../support/herald.js';
import { errorCode, postGraphQL } from '../support/http.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import { serviceToken, userToken } from '../support/tokens.js';
import { closeAllClients, rawSocket, type RawSocket } from '../support/ws.js';
import type { Broker } from '../../src/broker/types.js';
import { encodeNotification } from '../../src/common/notification.js';

let redis: RedisServer;
let subscribe: RunningSubscribeServer;
let publishUrl: string;
let publisher: Broker;

beforeAll(async () => {
  redis = await startRedisServer();
  subscribe = await startSubscribeServer((await createTestBroker(redis.url)).broker, { limits: { maxBufferedBytes: 64 * 1024 } });
  publishUrl = (await startPublishServer((await createTestBroker(redis.url)).broker)).url;
  publisher = (await createTestBroker(redis.url)).broker;
});
afterEach(closeAllClients);
afterAll(async () => {
  await closeAllClients();
  await stopAll();
  await redis.stop();
});

async function acknowledged(user: string): Promise<RawSocket> {
  const socket = await rawSocket(subscribe.wsUrl);
  socket.send({ type: 'connection_init', payload: { authorization: `Bearer ${userToken(user)}` } });
  expect(await socket.nextMessage()).toEqual({ type: 'connection_ack' });
  return socket;
}

const observers = (user: string) => subscribe.server.observers.observerCount(channels.audienceChannel('acme', 'USER', user));

/** Publishes straight through a broker, as a publish server would, without HTTP in the way. */
const publishTo = (user: string, text: string) =>
  publisher.publish({
    destination: channels.destination('acme', 'USER', user),
    tenantKey: channels.tenantKey('acme'),
    payload: encodeNotification({ text, timestamp: 1_700_000_000, audience: 'USER', sender: 'bench' }),
  });

describe('shared execution', () => {
  it('every observer of a shared execution gets its own id', async () => {
    const ids = ['1', 'a', 'x"y\\z', '🔔'];
    const sockets = await Promise.all(ids.map(() => acknowledged('alice')));
    const query = 'subscription { onNotificationReceived(userName: "alice") { text } }';
    sockets.forEach((socket, n) => socket.send({ id: ids[n], type: 'subscribe', payload: { query } }));
    await waitFor(() => observers('alice') === ids.length, 'every observer');

    expect((await publishTo('alice', 'shared')).receivedUsers).toBe(ids.length);
    const messages = await Promise.all(sockets.map((socket) => socket.nextMessage()));
    expect(messages).toEqual(ids.map((id) => ({ id, type: 'next', payload: { data: { onNotificationReceived: { text: 'shared' } } } })));
  });

  it('several subscriptions on one socket each get their own id', async () => {
    const socket = await acknowledged('bea');
    const query = 'subscription { onNotificationReceived(userName: "bea") { text } }';
    socket.send({ id: 'one', type: 'subscribe', payload: { query } });
    socket.send({ id: 'two', type: 'subscribe', payload: { query } });
    await waitFor(() => observers('bea') === 2, 'both observers');
    await publishTo('bea', 'twice');
    const messages = [await socket.nextMessage(), await socket.nextMessage()];
    expect(messages.map((message) => message['id']).sort()).toEqual(['one', 'two']);
  });

  it.each([
    ['a short frame', 10],
    ['a frame with a 16-bit length', 300],
    ['a frame with a 64-bit length', 70_000],
  ])('writes %s intact', async (_what, length) => {
    const socket = await acknowledged('fin');
    socket.send({ id: 'f', type: 'subscribe', payload: { query: 'subscription { onNotificationReceived(userName: "fin") { text } }' } });
    await waitFor(() => observers('fin') === 1, 'the observer');
    const text = 'é'.repeat(length); // two UTF-8 bytes each: lengths count bytes, not characters
    await publishTo('fin', text);
    expect(await socket.nextMessage()).toEqual({ id: 'f', type: 'next', payload: { data: { onNotificationReceived: { text } } } });
    socket.send({ id: 'f', type: 'complete' });
    await waitFor(() => observers('fin') === 0, 'the observer to leave');
  });

  it('clients with different selection sets on one channel each get exactly what they asked for', async () => {
    const selections: Array<[string, Record<string, unknown>]> = [
      ['{ text }', { text: 'hello' }],
      ['{ t: text, who: sender }', { t: 'hello', who: 'bench' }],
      ['{ id text timestamp audience sender }', { id: expect.any(String), text: 'hello', timestamp: 1_700_000_000, audience: 'USER', sender: 'bench' }],
      ['{ __typename audience }', { __typename: 'Notification', audience: 'USER' }],
    ];
    const sockets = await Promise.all(selections.map(() => acknowledged('cyd')));
    sockets.forEach((socket, n) =>
      socket.send({
        id: `s${n}`,
        type: 'subscribe',
        payload: { query: `subscription On($u: String!) { onNotificationReceived(userName: $u) ${selections[n]?.[0]} }`, variables: { u: 'cyd' } },
      }),
    );
    await waitFor(() => observers('cyd') === selections.length, 'every observer');
    await publishTo('cyd', 'hello');
    const messages = await Promise.all(sockets.map((socket) => socket.nextMessage()));
    expect(messages).toEqual(
      selections.map(([, expected], n) => ({ id: `s${n}`, type: 'next', payload: { data: { onNotificationReceived: expected } } })),
    );
  });
});

describe('slow consumers', () => {
  it('a reader that stops reading is closed with 4413; the others get everything, promptly', async () => {
    const stalled = await acknowledged('dan');
    const healthy = await acknowledged('dan');
    const query = 'subscription { onNotificationReceived(userName: "dan") { text } }';
    stalled.send({ id: '1', type: 'subscribe', payload: { query } });
    healthy.send({ id: '1', type: 'subscribe', payload: { query } });
    await waitFor(() => observers('dan') === 2, 'both observers');
    (stalled.socket as unknown as { _socket: { pause(): void } })._socket.pause();

    const received: number[] = [];
    const latest: { at: number } = { at: 0 };
    healthy.socket.on('message', () => {
      received.push(Date.now());
      latest.at = Date.now();
    });
    const text = 'x'.repeat(1500);
    const count = 4000; // about 6 MB: more than loopback socket buffers hold
    const sentAt: number[] = [];
    for (let n = 0; n < count; n += 200) {
      const batch = Array.from({ length: Math.min(200, count - n) }, () => publishTo('dan', text));
      sentAt.push(Date.now());
      await Promise.all(batch);
    }
    const closed = stalled.closed(10_000);
    (stalled.socket as unknown as { _socket: { resume(): void } })._socket.resume();
    expect(await closed).toMatchObject({ code: 4413, reason: expect.stringContaining('MAX_BUFFERED_BYTES') });
    await waitFor(() => received.length === count, `all ${count} notifications at the healthy reader`, 10_000);
    // The healthy reader kept pace: its last notification came soon after the last publish.
    expect(latest.at - (sentAt.at(-1) ?? 0)).toBeLessThan(2000);
    await waitFor(() => observers('dan') === 1, 'the stalled observer to be released');
  });
});

describe('sendNotifications (batch)', () => {
  it('sends many in one request, in order, with one result each', async () => {
    const socket = await acknowledged('eve');
    socket.send({ id: '1', type: 'subscribe', payload: { query: 'subscription { onNotificationReceived(userName: "eve") { text } }' } });
    await waitFor(() => observers('eve') === 1, 'the observer');
    const notifications = Array.from({ length: 50 }, (_, n) => ({ to: n % 5 ? 'eve' : 'nobody', text: `b${n}` }));
    const response = await postGraphQL(
      publishUrl,
      'mutation Batch($n: [NotificationInput!]!) { sendNotifications(notifications: $n) { id receivedUsers } }',
      { token: serviceToken(), variables: { n: notifications } },
    );
    const results = response.body.data?.['sendNotifications'] as Array<{ id: string; receivedUsers: number }>;
    expect(results.map((result) => result.receivedUsers)).toEqual(notifications.map(({ to }) => (to === 'eve' ? 1 : 0)));
    const texts: string[] = [];
    for (let n = 0; n < 40; n++) texts.push(((await socket.nextMessage())['payload'] as { data: { onNotificationReceived: { text: string } } }).data.onNotificationReceived.text);
    expect(texts).toEqual(notifications.filter(({ to }) => to === 'eve').map(({ text }) => text));
  });

  it('refuses the whole batch when one entry is bad, naming it', async () => {
    const response = await postGraphQL(
      publishUrl,
      'mutation { sendNotifications(notifications: [{ to: "eve", text: "fine" }, { to: "e ve", text: "bad" }]) { id } }',
      { token: serviceToken() },
    );
    expect(errorCode(response)).toBe('BAD_USER_INPUT');
    expect(response.body.errors?.[0]?.message).toMatch(/^notification 1: user name/);
  });
});
