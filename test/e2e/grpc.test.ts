/**
 * gRPC: the real @grpc/grpc-js client against the feed and publisher servers, on a
 * private redis-server, sharing observers and auth rules with GraphQL.
 */
import { connect as http2Connect, constants as http2Constants, type ClientHttp2Session } from 'node:http2';
import { status } from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  channels,
  createTestBroker,
  startGrpcFeed,
  startGrpcPublish,
  startPublishServer,
  startSubscribeServer,
  stopAll,
  waitFor,
  type RunningPublishServer,
  type RunningSubscribeServer,
} from '../support/herald.js';
import { bearer, closeGrpcClients, feedClient, freezableProxy, grpcSend, publisherClient, readFeed, type PublisherClient } from '../support/grpc.js';
import { send } from '../support/http.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import { serviceToken, userToken } from '../support/tokens.js';
import { closeAllClients, collect, ON_NOTIFICATION, wsClient } from '../support/ws.js';

let redis: RedisServer;
let subscribe: RunningSubscribeServer;
let publish: RunningPublishServer;
let feedPort: number;
let publisher: PublisherClient;

beforeAll(async () => {
  redis = await startRedisServer();
  subscribe = await startSubscribeServer((await createTestBroker(redis.url)).broker);
  publish = await startPublishServer((await createTestBroker(redis.url)).broker);
  feedPort = (await startGrpcFeed(subscribe)).port;
  publisher = publisherClient((await startGrpcPublish(publish)).port);
});
afterEach(async () => {
  closeGrpcClients();
  await closeAllClients();
  publisher = publisherClient((await startGrpcPublish(publish)).port);
});
afterAll(async () => {
  closeGrpcClients();
  await stopAll();
  await redis.stop();
});

const userChannel = (user: string) => channels.audienceChannel('acme', 'USER', user);
const subscribed = (user: string, count = 1) =>
  waitFor(async () => (await redis.numsub(userChannel(user))) === count, `NUMSUB of ${user} = ${count}`);
const openFeed = (user: string, token = userToken(user), since?: string, port = feedPort) =>
  readFeed(feedClient(port).feed({ userName: user, ...(since ? { since } : {}) }, bearer(token)));

describe('Feed and Send', () => {
  it('a Feed receives notifications sent through GraphQL and through gRPC Send, typed', async () => {
    const feed = openFeed('alice');
    await subscribed('alice');
    expect(await send(publish.url, serviceToken(), 'alice', 'via graphql')).toBe(1);
    const viaGrpc = await grpcSend(publisher, serviceToken(), { to: 'alice', text: 'via grpc', audience: 'AUDIENCE_USER', category: 'invoice', critical: true });
    expect(viaGrpc).toEqual({ id: expect.any(String), receivedUsers: 1, duplicate: false });
    await grpcSend(publisher, serviceToken(), { to: 'acme', text: 'company', audience: 'AUDIENCE_COMPANY' });

    await feed.nth(2);
    expect(feed.events).toEqual([
      {
        event: 'notification',
        // proto3: no category is '', not critical is false
        notification: { id: expect.any(String), text: 'via graphql', timestamp: expect.any(Number), audience: 'AUDIENCE_USER', sender: 'billing', category: '', critical: false },
      },
      { event: 'notification', notification: expect.objectContaining({ id: viaGrpc.id, text: 'via grpc', category: 'invoice', critical: true }) },
      { event: 'notification', notification: expect.objectContaining({ text: 'company', audience: 'AUDIENCE_COMPANY' }) },
    ]);
  });

  it('GraphQL and gRPC observers of one user share one Redis channel', async () => {
    const feed = openFeed('bob');
    const events = collect(wsClient(subscribe.wsUrl, { token: userToken('bob') }), ON_NOTIFICATION, { userName: 'bob' });
    await waitFor(() => subscribe.server.observers.observerCount(userChannel('bob')) === 2, 'both observers');
    expect(await redis.numsub(userChannel('bob'))).toBe(1);
    expect(await send(publish.url, serviceToken(), 'bob', 'to both')).toBe(2);
    await feed.nth(0);
    await events.nth(0);
  });

  it('a cancelled call releases its observer', async () => {
    const feed = openFeed('carl');
    await subscribed('carl');
    feed.cancel();
    await subscribed('carl', 0);
    expect(subscribe.server.observers.observerCount(userChannel('carl'))).toBe(0);
  });

  it('SendBatch sends in order; one bad notification sends none', async () => {
    const feed = openFeed('dora');
    await subscribed('dora');
    const batch = await new Promise<{ results: Array<{ id: string; receivedUsers: number }> }>((resolve, reject) =>
      publisher.sendBatch(
        { notifications: [{ to: 'dora', text: 'b1' }, { to: 'dora', text: 'b2' }, { to: 'nobody', text: 'b3' }] },
        bearer(serviceToken()),
        (error, response) => (error ? reject(error) : resolve(response)),
      ),
    );
    expect(batch.results.map((result) => result.receivedUsers)).toEqual([1, 1, 0]);
    const refused = await new Promise<{ code?: number; details?: string }>((resolve) =>
      publisher.sendBatch({ notifications: [{ to: 'dora', text: 'never' }, { to: 'do ra', text: 'x' }] }, bearer(serviceToken()), (error) =>
        resolve(error ?? {}),
      ),
    );
    expect(refused).toMatchObject({ code: status.INVALID_ARGUMENT, details: expect.stringContaining('notification 1: user name') });
    await grpcSend(publisher, serviceToken(), { to: 'dora', text: 'sentinel' });
    await feed.nth(2);
    expect(feed.events.map((event) => ('notification' in event ? event.notification.text : 'gap'))).toEqual(['b1', 'b2', 'sentinel']);
  });

  it('resumes with `since`, and reports a lost history as a HistoryGap event', async () => {
    const first = openFeed('erin');
    await subscribed('erin');
    const seen = await grpcSend(publisher, serviceToken(), { to: 'erin', text: 'seen' });
    await first.nth(0);
    first.cancel();
    await subscribed('erin', 0);
    await grpcSend(publisher, serviceToken(), { to: 'erin', text: 'missed 1' });
    await grpcSend(publisher, serviceToken(), { to: 'erin', text: 'missed 2' });

    const resumed = openFeed('erin', userToken('erin'), seen.id);
    await resumed.nth(1);
    expect(resumed.events.map((event) => ('notification' in event ? event.notification.text : 'gap'))).toEqual(['missed 1', 'missed 2']);

    const lost = openFeed('erin', userToken('erin'), 'feedfacecafe_1-1');
    expect(await lost.nth(0)).toEqual({ event: 'historyGap', historyGap: { reason: expect.stringContaining('earlier notification history') } });
  });
});

describe('auth and input', () => {
  it.each([
    ['no token', undefined, 'kim', status.UNAUTHENTICATED, /missing token/],
    ['a bad token', 'not.a.jwt', 'lou', status.UNAUTHENTICATED, /token rejected/],
    ['another user', userToken('mallory'), 'max', status.PERMISSION_DENIED, /your own notifications/],
    ['a bad user name', userToken('ned'), 'ne*d', status.INVALID_ARGUMENT, /userName/],
  ])('Feed with %s ends with its status and subscribes nothing', async (_what, token, user, code, details) => {
    const feed = readFeed(feedClient(feedPort).feed({ userName: user }, bearer(token)));
    expect(await feed.ended()).toMatchObject({ code, details: expect.stringMatching(details) });
    if (!user.includes('*')) {
      expect(subscribe.server.observers.observerCount(userChannel(user))).toBe(0);
      expect(await redis.numsub(userChannel(user))).toBe(0);
    }
  });

  it.each([
    ['no token', undefined, { to: 'alice', text: 'x' }, status.UNAUTHENTICATED],
    ['no publish scope', userToken('alice'), { to: 'alice', text: 'x' }, status.PERMISSION_DENIED],
    ['another tenant’s company', serviceToken(), { to: 'globex', text: 'x', audience: 'AUDIENCE_COMPANY' as const }, status.PERMISSION_DENIED],
    ['a bad name', serviceToken(), { to: 'a:b', text: 'x' }, status.INVALID_ARGUMENT],
    ['an empty text', serviceToken(), { to: 'alice', text: '' }, status.INVALID_ARGUMENT],
  ])('Send with %s is refused with its status', async (_what, token, request, code) => {
    await expect(grpcSend(publisher, token, request)).rejects.toMatchObject({ code });
  });
});

describe('lifetimes', () => {
  it('the stream ends with UNAUTHENTICATED when the token expires, and releases its channel', async () => {
    const feed = openFeed('fred', userToken('fred', {}, 3));
    await subscribed('fred');
    expect(await feed.ended(5000)).toMatchObject({ code: status.UNAUTHENTICATED, details: 'token expired' });
    await subscribed('fred', 0);
  });

  it('a client that pings too often is told to back off: GOAWAY ENHANCE_YOUR_CALM too_many_pings', async () => {
    const strict = await startGrpcFeed(subscribe, { minPingIntervalMs: 1000, maxPingStrikes: 2 });
    const session = http2Connect(`http://127.0.0.1:${strict.port}`);
    session.on('error', () => undefined);
    const goaway = new Promise<{ code: number; data: string }>((resolve) =>
      session.once('goaway', (code, _lastStreamId, data) => resolve({ code, data: data?.toString() ?? '' })),
    );
    await new Promise<void>((resolve) => session.once('connect', () => resolve()));
    for (let n = 0; n < 5; n++) session.ping(() => undefined);
    expect(await goaway).toEqual({ code: http2Constants.NGHTTP2_ENHANCE_YOUR_CALM, data: 'too_many_pings' });
    session.destroy();
  });

  it('a client may ping as the server sends, as grpc-core clients do (BDP probes); with nothing sent its strikes count again', async () => {
    const strict = await startGrpcFeed(subscribe, { minPingIntervalMs: 1000, maxPingStrikes: 2 });
    const session = http2Connect(`http://127.0.0.1:${strict.port}`);
    session.on('error', () => undefined);
    let goaway: { code: number; data: string } | undefined;
    const refused = new Promise<{ code: number; data: string }>((resolve) =>
      session.once('goaway', (code, _lastStreamId, data) => resolve((goaway = { code, data: data?.toString() ?? '' }))),
    );
    const ping = (): Promise<void> => new Promise((resolve, reject) => session.ping((error) => (error ? reject(error) : resolve())));
    // 30 PINGs within about a second: each answer (headers, a message, trailers) forgives the strikes.
    for (let n = 0; n < 10; n++) {
      expect(await rawHealthCheck(session)).toBe('0');
      for (let p = 0; p < 3; p++) await ping();
    }
    expect(goaway).toBeUndefined();
    for (let p = 0; p < 4; p++) session.ping(() => undefined);
    expect(await refused).toEqual({ code: http2Constants.NGHTTP2_ENHANCE_YOUR_CALM, data: 'too_many_pings' });
    session.destroy();
  });

  it('a grpc-js client with a too-short keepalive loses its connection; one within the policy keeps it', async () => {
    const strict = await startGrpcFeed(subscribe, { minPingIntervalMs: 1000, maxPingStrikes: 2 });
    const greedy = readFeed(
      feedClient(strict.port, { 'grpc.keepalive_time_ms': 20, 'grpc.keepalive_permit_without_calls': 1 }).feed({ userName: 'gina' }, bearer(userToken('gina'))),
    );
    // grpc-js reports a connection ended with ENHANCE_YOUR_CALM as RESOURCE_EXHAUSTED
    expect(await greedy.ended()).toMatchObject({ code: status.RESOURCE_EXHAUSTED });

    const polite = readFeed(
      feedClient(strict.port, { 'grpc.keepalive_time_ms': 1500 }).feed({ userName: 'gina' }, bearer(userToken('gina'))),
    );
    await subscribed('gina');
    expect(await send(publish.url, serviceToken(), 'gina', 'still here')).toBe(1);
    await polite.nth(0);
  });

  it('a peer that stops answering is dropped by the server’s keepalive and its observer released', async () => {
    const watchful = await startGrpcFeed(subscribe, { timeMs: 100, timeoutMs: 200 });
    const proxy = await freezableProxy(watchful.port);
    openFeed('hugo', userToken('hugo'), undefined, proxy.port);
    await subscribed('hugo');
    proxy.freeze();
    await waitFor(async () => (await redis.numsub(userChannel('hugo'))) === 0, 'the keepalive to drop the dead peer', 5000);
    expect(subscribe.server.observers.observerCount(userChannel('hugo'))).toBe(0);
  });

  it('the stream ends with UNAVAILABLE when the server shuts down', async () => {
    const leaving = await startGrpcFeed(subscribe);
    const feed = openFeed('ivan', userToken('ivan'), undefined, leaving.port);
    await subscribed('ivan');
    await leaving.stop();
    expect(await feed.ended()).toMatchObject({ code: status.UNAVAILABLE, details: expect.stringContaining('shutting down') });
    await subscribed('ivan', 0);
  });

  it('Send and Feed answer UNAVAILABLE while Redis is down', async () => {
    await redis.kill();
    try {
      await waitFor(async () => !(await fetch(publish.url.replace('/graphql', '/readyz'))).ok, 'the publish server to notice');
      await waitFor(async () => !(await fetch(subscribe.httpUrl.replace('/graphql', '/readyz'))).ok, 'the subscribe server to notice');
      await expect(grpcSend(publisher, serviceToken(), { to: 'alice', text: 'x' })).rejects.toMatchObject({ code: status.UNAVAILABLE });
      const feed = openFeedUnchecked('judy');
      expect(await feed.ended()).toMatchObject({ code: status.UNAVAILABLE, details: expect.stringContaining('Redis is unavailable') });
    } finally {
      await redis.restart();
    }
  });
});

/** `grpc.health.v1.Health/Check` for the server (an empty request) on a bare HTTP/2 session; resolves with `grpc-status`. */
function rawHealthCheck(session: ClientHttp2Session): Promise<string> {
  const stream = session.request({ ':method': 'POST', ':path': '/grpc.health.v1.Health/Check', 'content-type': 'application/grpc', te: 'trailers' });
  stream.end(Buffer.alloc(5));
  stream.resume();
  return new Promise((resolve, reject) => {
    stream.once('trailers', (trailers) => resolve(String(trailers['grpc-status'])));
    stream.once('error', reject);
    stream.once('close', () => reject(new Error('the Check stream closed without trailers')));
  });
}

function openFeedUnchecked(user: string) {
  return readFeed(feedClient(feedPort).feed({ userName: user }, bearer(userToken(user))));
}
