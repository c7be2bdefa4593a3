/**
 * The edges of graphql-transport-ws, tokens at `connection_init`, Origin, and the
 * per-connection limits — each refused with its close code or error, the server up.
 */
import { generateKeyPairSync } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { channels, createTestBroker, startPublishServer, startSubscribeServer, stopAll, waitFor, type RunningSubscribeServer } from '../support/herald.js';
import { send } from '../support/http.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import { rawToken, serviceToken, TEST_SECRET, userToken } from '../support/tokens.js';
import { closeAllClients, collect, ON_NOTIFICATION, rawSocket, refusedUpgrade, wsClient } from '../support/ws.js';
import { PATIENCE_MS } from '../support/patience.js';

let redis: RedisServer;
let server: RunningSubscribeServer;
let publishUrl: string;

beforeAll(async () => {
  redis = await startRedisServer();
  const { broker } = await createTestBroker(redis.url);
  server = await startSubscribeServer(broker, {
    connectionInitTimeoutMs: 100,
    keepAliveMs: 100,
    corsOrigins: ['https://app.example.com'],
    limits: { maxSubscriptionsPerConnection: 2, maxMessageBytes: 4096, maxQueryDepth: 4, maxQueryAliases: 3 },
  });
  publishUrl = (await startPublishServer((await createTestBroker(redis.url)).broker)).url;
});
afterEach(closeAllClients);
afterAll(async () => {
  await closeAllClients();
  await stopAll();
  await redis.stop();
});

/** Opens a raw socket and completes `connection_init` with `token`. */
async function acknowledged(token = userToken('alice')) {
  const socket = await rawSocket(server.wsUrl);
  socket.send({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } });
  expect(await socket.nextMessage()).toEqual({ type: 'connection_ack' });
  return socket;
}

const subscribeFrame = (id: string, userName = 'alice') => ({
  id,
  type: 'subscribe',
  payload: { query: ON_NOTIFICATION, variables: { userName } },
});

describe('graphql-transport-ws edges', () => {
  it('closes with 4400 on a frame that is not a message', async () => {
    const socket = await acknowledged();
    socket.send('{not json');
    expect(await socket.closed()).toEqual({ code: 4400, reason: 'Invalid message received' });
  });

  it('closes with 4400 on a message of an unknown type', async () => {
    const socket = await acknowledged();
    socket.send({ type: 'gimme', id: '1' });
    expect((await socket.closed()).code).toBe(4400);
  });

  it('closes with 4401 on subscribe before connection_ack', async () => {
    const socket = await rawSocket(server.wsUrl);
    socket.send(subscribeFrame('1'));
    expect(await socket.closed()).toEqual({ code: 4401, reason: 'Unauthorized' });
    expect(server.server.observers.channelCount).toBe(0);
  });

  it('closes with 4408 when connection_init does not come in time', async () => {
    const socket = await rawSocket(server.wsUrl);
    expect(await socket.closed()).toEqual({ code: 4408, reason: 'Connection initialisation timeout' });
  });

  it('closes with 4409 on a second subscribe with an id in use', async () => {
    const socket = await acknowledged();
    socket.send(subscribeFrame('1'));
    socket.send(subscribeFrame('1'));
    expect(await socket.closed()).toEqual({ code: 4409, reason: 'Subscriber for 1 already exists' });
    await waitFor(() => server.server.observers.channelCount === 0, 'the first subscription to be released');
  });

  it('closes with 4429 on a second connection_init', async () => {
    const socket = await acknowledged();
    socket.send({ type: 'connection_init', payload: {} });
    expect(await socket.closed()).toEqual({ code: 4429, reason: 'Too many initialisation requests' });
  });

  it('sends keepalive pings', async () => {
    const socket = await acknowledged();
    const pinged = new Promise<void>((resolve) => socket.socket.once('ping', () => resolve()));
    await pinged;
    expect(socket.socket.readyState).toBe(socket.socket.OPEN);
  });

  it('answers a GraphQL syntax error with an error message and keeps the socket open', async () => {
    const socket = await acknowledged();
    socket.send({ id: '1', type: 'subscribe', payload: { query: 'subscription {' } });
    const message = await socket.nextMessage();
    expect(message).toMatchObject({ id: '1', type: 'error', payload: [{ message: expect.stringContaining('Syntax Error') }] });
    socket.send({ type: 'ping' });
    expect(await socket.nextMessage()).toEqual({ type: 'pong' });
  });

  it.each([
    ['the legacy graphql-ws subprotocol', 'graphql-ws'],
    ['no subprotocol', undefined],
  ])('refuses an upgrade with %s (HTTP 400)', async (_what, protocol) => {
    expect(await refusedUpgrade(server.wsUrl, protocol)).toBe(400);
  });

  it('refuses an upgrade on another path (HTTP 404)', async () => {
    expect(await refusedUpgrade(server.wsUrl.replace('/graphql', '/other'), 'graphql-transport-ws')).toBe(404);
  });
});

describe('tokens at connection_init', () => {
  const now = Math.floor(Date.now() / 1000);
  const { privateKey: rsaKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const cases: Array<[string, Record<string, unknown> | undefined, RegExp]> = [
    ['no token', undefined, /missing token/],
    ['a token with a bad signature', { authorization: `Bearer ${jwt.sign({ sub: 'alice', tenant: 'acme' }, 'another-secret-of-at-least-32-bytes!!', { expiresIn: 60 })}` }, /invalid signature/],
    ['an expired token', { authorization: `Bearer ${rawToken({ sub: 'alice', tenant: 'acme', exp: now - 10 })}` }, /token expired/],
    ['a token without exp', { authorization: `Bearer ${rawToken({ sub: 'alice', tenant: 'acme' })}` }, /no "exp" claim/],
    ['a token without tenant', { authorization: `Bearer ${userToken('alice', { tenant: undefined })}` }, /tenant/],
    ['an alg:none token', { authorization: `Bearer ${jwt.sign({ sub: 'alice', tenant: 'acme', exp: now + 60 }, '', { algorithm: 'none' })}` }, /jwt signature is required|invalid/],
    ['a token of another algorithm (RS256)', { authorization: `Bearer ${jwt.sign({ sub: 'alice', tenant: 'acme', exp: now + 60 }, rsaKey, { algorithm: 'RS256' })}` }, /invalid algorithm/],
    ['a malformed token', { authorization: 'Bearer not.a.jwt' }, /malformed|invalid token/],
    ['a non-Bearer authorization', { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` }, /Bearer/],
    ['a sub that is not a valid name', { authorization: `Bearer ${userToken('ali*ce')}` }, /sub/],
  ];

  it.each(cases)('closes with 4403 and no ack on %s', async (_what, payload, reason) => {
    const socket = await rawSocket(server.wsUrl);
    socket.send({ type: 'connection_init', ...(payload ? { payload } : {}) });
    const first = await socket.nextMessage();
    expect(first).toEqual({ closed: { code: 4403, reason: expect.stringMatching(reason) } });
  });

  it('accepts the token from the upgrade request Authorization header', async () => {
    const socket = await rawSocket(server.wsUrl, { headers: { Authorization: `Bearer ${userToken('alice')}` } });
    socket.send({ type: 'connection_init' });
    expect(await socket.nextMessage()).toEqual({ type: 'connection_ack' });
  });

  it('closes with 4403 when the token expires on an open connection, and delivers nothing after', async () => {
    const closed: number[] = [];
    // Long enough for the subscription and a first notification on a loaded machine (it once took over 3 s).
    const client = wsClient(server.wsUrl, { token: userToken('olivia', {}, 10), onClosed: (code) => closed.push(code) });
    const events = collect(client, ON_NOTIFICATION, { userName: 'olivia' });
    const channel = channels.audienceChannel('acme', 'USER', 'olivia');
    await waitFor(async () => (await redis.numsub(channel)) === 1, 'the subscription');
    expect(await send(publishUrl, serviceToken(), 'olivia', 'before expiry')).toBe(1);
    await events.nth(0);

    await events.ended(10_000 + PATIENCE_MS);
    // The subscription's own expiry and the connection's close race: wait for the close.
    await waitFor(() => closed.length > 0, 'the socket to close');
    expect(closed).toEqual([4403]);
    await waitFor(async () => (await redis.numsub(channel)) === 0, 'the channel to be released');
    expect(await send(publishUrl, serviceToken(), 'olivia', 'after expiry')).toBe(0);
    expect(events.results.map((result) => (result.data?.['onNotificationReceived'] as { text: string }).text)).toEqual(['before expiry']);
  });

  it('verifies with exactly the configured algorithm (HS256 here)', () => {
    expect(jwt.verify(userToken('alice'), TEST_SECRET, { algorithms: ['HS256'] })).toMatchObject({ sub: 'alice' });
  });
});

describe('origins', () => {
  it('refuses an upgrade from an origin not in CORS_ORIGINS (HTTP 403)', async () => {
    expect(await refusedUpgrade(server.wsUrl, 'graphql-transport-ws', { Origin: 'https://evil.example.com' })).toBe(403);
  });

  it('accepts an allowlisted origin and the server’s own', async () => {
    for (const origin of ['https://app.example.com', `http://127.0.0.1:${server.port}`]) {
      const socket = await rawSocket(server.wsUrl, { headers: { Origin: origin } });
      socket.send({ type: 'connection_init', payload: { authorization: `Bearer ${userToken('alice')}` } });
      expect(await socket.nextMessage()).toEqual({ type: 'connection_ack' });
    }
  });
});

describe('limits', () => {
  it('closes with 1009 on a frame over MAX_MESSAGE_BYTES, and the server stays up', async () => {
    const socket = await acknowledged();
    socket.send({ id: '1', type: 'subscribe', payload: { query: `# ${'x'.repeat(5000)}\n{ viewer { name } }` } });
    // 1009 is WebSocket's "Message Too Big"; `ws` sends it without a reason.
    expect((await socket.closed()).code).toBe(1009);
    await acknowledged();
  });

  it('refuses a subscription over MAX_SUBSCRIPTIONS_PER_CONNECTION; the others go on', async () => {
    const socket = await acknowledged();
    socket.send(subscribeFrame('1'));
    socket.send(subscribeFrame('2'));
    socket.send(subscribeFrame('3'));
    expect(await socket.nextMessage()).toEqual({
      id: '3',
      type: 'error',
      payload: [
        {
          message: 'this connection already holds 2 subscriptions (MAX_SUBSCRIPTIONS_PER_CONNECTION)',
          extensions: { code: 'LIMIT_EXCEEDED' },
        },
      ],
    });
    const channel = channels.audienceChannel('acme', 'USER', 'alice');
    await waitFor(() => server.server.observers.observerCount(channel) === 2, 'the two allowed subscriptions');
    expect(await send(publishUrl, serviceToken(), 'alice', 'still here')).toBe(2);
    const delivered = [await socket.nextMessage(), await socket.nextMessage()];
    expect(delivered.map((message) => message['id']).sort()).toEqual(['1', '2']);
  });

  it('still runs a refreshToken on a connection holding MAX_SUBSCRIPTIONS_PER_CONNECTION, and refuses a subscription more', async () => {
    const socket = await acknowledged();
    socket.send(subscribeFrame('1'));
    socket.send(subscribeFrame('2'));
    const channel = channels.audienceChannel('acme', 'USER', 'alice');
    await waitFor(() => server.server.observers.observerCount(channel) === 2, 'the two allowed subscriptions');
    const token = userToken('alice', {}, 7200);
    socket.send({ id: 'r', type: 'subscribe', payload: { query: 'mutation R($t: String!) { refreshToken(token: $t) { expiresAt } }', variables: { t: token } } });
    expect(await socket.nextMessage()).toEqual({ id: 'r', type: 'next', payload: { data: { refreshToken: { expiresAt: (jwt.decode(token) as { exp: number }).exp * 1000 } } } });
    expect(await socket.nextMessage()).toEqual({ id: 'r', type: 'complete' });
    socket.send(subscribeFrame('3'));
    expect(await socket.nextMessage()).toMatchObject({ id: '3', type: 'error', payload: [{ extensions: { code: 'LIMIT_EXCEEDED' } }] });
  });

  it('refuses a query deeper than MAX_QUERY_DEPTH', async () => {
    const socket = await acknowledged();
    socket.send({ id: '1', type: 'subscribe', payload: { query: '{ viewer { name { a { b { c } } } } }' } });
    const message = await socket.nextMessage();
    expect(message).toMatchObject({ id: '1', type: 'error' });
    expect(message['payload']).toContainEqual({
      message: 'Query depth limit of 4 exceeded, found 5. (MAX_QUERY_DEPTH)',
      extensions: { code: 'LIMIT_EXCEEDED' },
    });
  });

  it('refuses more aliases than MAX_QUERY_ALIASES', async () => {
    const socket = await acknowledged();
    socket.send({ id: '1', type: 'subscribe', payload: { query: '{ a: viewer { name } b: viewer { name } c: viewer { name } d: viewer { name } }' } });
    const message = await socket.nextMessage();
    expect(message['payload']).toContainEqual({
      message: expect.stringContaining('Aliases limit of 3 exceeded'),
      extensions: { code: 'LIMIT_EXCEEDED' },
    });
  });

  it('refuses a mutation on the subscribe server, naming the publish server', async () => {
    const socket = await acknowledged();
    socket.send({ id: '1', type: 'subscribe', payload: { query: 'mutation { sendNotification(to: "a", text: "b") { receivedUsers } }' } });
    const message = await socket.nextMessage();
    expect(message['payload']).toContainEqual({
      message: 'this server does not answer Mutation.sendNotification: send notifications through the publish server',
      locations: [{ line: 1, column: 12 }],
      extensions: { code: 'WRONG_SERVER' },
    });
  });
});

describe('sockets that go away', () => {
  it('a terminated socket (no close frame) releases its channels', async () => {
    const socket = await acknowledged(userToken('paul'));
    socket.send(subscribeFrame('1', 'paul'));
    const channel = channels.audienceChannel('acme', 'USER', 'paul');
    await waitFor(async () => (await redis.numsub(channel)) === 1, 'the subscription');
    socket.socket.terminate();
    await waitFor(async () => (await redis.numsub(channel)) === 0, 'the channel to be released');
  });

  it('a socket that stops answering pings is dropped and releases its channels', async () => {
    const socket = await acknowledged(userToken('quinn'));
    socket.send(subscribeFrame('1', 'quinn'));
    const channel = channels.audienceChannel('acme', 'USER', 'quinn');
    await waitFor(async () => (await redis.numsub(channel)) === 1, 'the subscription');
    // Stop reading: the client's pongs never go out, as with a peer that vanished.
    (socket.socket as unknown as { _socket: { pause(): void } })._socket.pause();
    await waitFor(async () => (await redis.numsub(channel)) === 0, 'the keepalive to drop the socket', 3000);
    expect(server.server.observers.observerCount(channel)).toBe(0);
  });
});
