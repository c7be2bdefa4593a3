/**
 * In-band token refresh (`refreshToken`) on real processes: a subscribe and a publish
 * server built to `dist/`, a real Redis, the real graphql-ws client. Tokens live a few
 * seconds; a client that refreshes on its live socket keeps that one socket and its
 * subscription past every old token's expiry, and is closed (4403) at the expiry of
 * the last token it took. A refused refresh — another user's, another tenant's, other
 * stores, an expired token, garbage — changes nothing: the connection still closes at
 * its old expiry. Over HTTP and SSE there is no connection to refresh.
 */
import { createClient, type Client } from 'graphql-ws';
import jwt from 'jsonwebtoken';
import WebSocket from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { REFRESH_NEEDS_A_CONNECTION } from '../../src/graphql/token-refresh.js';
import { channels, waitFor } from '../support/herald.js';
import { errorCode, postGraphQL, readEvents, send } from '../support/http.js';
import { PATIENCE_MS } from '../support/patience.js';
import { startHeraldProcess, stopAllProcesses, type HeraldProcess } from '../support/process.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import { serviceToken, userToken } from '../support/tokens.js';
import { collect, ON_NOTIFICATION, type Collected, type Result } from '../support/ws.js';

let redis: RedisServer;
let subscribe: HeraldProcess;
let publishUrl: string;
let wsUrl: string;
let httpUrl: string;

beforeAll(async () => {
  redis = await startRedisServer();
  const env = { REDIS_URL: redis.url, METRICS_PORT: '0' };
  const [subscriber, publisher] = await Promise.all([startHeraldProcess('subscribe', { env }), startHeraldProcess('publish', { env })]);
  subscribe = subscriber;
  publishUrl = `http://127.0.0.1:${publisher.publishPort}/graphql`;
  wsUrl = `ws://127.0.0.1:${subscriber.subscribePort}/graphql`;
  httpUrl = `http://127.0.0.1:${subscriber.subscribePort}/graphql`;
});
const clients: Client[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.dispose()));
});
afterAll(async () => {
  await stopAllProcesses();
  await redis.stop();
});

const REFRESH = `mutation Refresh($token: String!) { refreshToken(token: $token) { expiresAt } }`;

/** A token's `exp`, in ms since the epoch: when the server closes a connection that holds it. */
const expiryOf = (token: string): number => (jwt.decode(token) as { exp: number }).exp * 1000;

/** Resolves once the wall clock reads `at` (ms since the epoch): a token's expiry is a wall-clock deadline. */
const clockReads = (at: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(0, at - Date.now())));

/**
 * A graphql-ws client that never retries (a close is final), with every WebSocket it
 * opens — each one TCP connection — and how its socket closed, and when.
 */
function trackedClient(token: string) {
  const sockets: WebSocket[] = [];
  const closes: Array<{ code: number; reason: string; at: number }> = [];
  class TrackedWebSocket extends WebSocket {
    constructor(...args: ConstructorParameters<typeof WebSocket>) {
      super(...args);
      sockets.push(this);
    }
  }
  const client = createClient({
    url: wsUrl,
    webSocketImpl: TrackedWebSocket,
    retryAttempts: 0,
    connectionParams: { authorization: `Bearer ${token}` },
    on: {
      closed: (event) => {
        const { code, reason } = event as { code: number; reason: string };
        closes.push({ code, reason: String(reason), at: Date.now() });
      },
    },
  });
  clients.push(client);
  return { client, sockets, closes };
}

/** Sends `refreshToken` on `client`'s socket and resolves with its one result. */
function refresh(client: Client, token: string): Promise<Result> {
  return new Promise((resolve, reject) => {
    let result: Result | undefined;
    client.subscribe<Record<string, unknown>>(
      { query: REFRESH, variables: { token } },
      {
        next: (value) => (result = value),
        error: reject,
        complete: () => (result ? resolve(result) : reject(new Error('refreshToken answered nothing'))),
      },
    );
  });
}

/** Subscribes `user` on `client` and resolves once Redis holds its channel. */
async function subscribed(client: Client, user: string): Promise<Collected> {
  const events = collect(client, ON_NOTIFICATION, { userName: user });
  const channel = channels.audienceChannel('acme', 'USER', user);
  await waitFor(async () => (await redis.numsub(channel)) === 1, `${user}'s subscription`);
  return events;
}

/** Publishes `text` to `user` and waits for it as the subscription's `n`th event. */
async function delivered(events: Collected, user: string, text: string, n: number): Promise<void> {
  expect(await send(publishUrl, serviceToken(), user, text)).toBe(1);
  const result = await events.nth(n);
  expect((result.data?.['onNotificationReceived'] as { text: string }).text).toBe(text);
}

async function scrape(): Promise<string> {
  return (await fetch(`http://127.0.0.1:${subscribe.metricsPort}/metrics`)).text();
}

/** The value of an unlabelled sample (`role` aside), or of `name{transport="…"}`. */
function sample(text: string, name: string, transport?: string): number | undefined {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${name}{`) && (transport === undefined || candidate.includes(`transport="${transport}"`)));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** How late a 4403 at expiry may arrive: separates "closed at the token's expiry" from "closed at another's" (an hour or more away). */
const CLOSE_BOUND_MS = PATIENCE_MS;

describe('refreshToken on a live WebSocket', () => {
  it('keeps one TCP connection and its subscription past two expiries, and closes at the last token\'s', async () => {
    const refreshesBefore = sample(await scrape(), 'herald_token_refreshes_total') ?? 0;
    // Lifetimes that leave a loaded machine seconds for each step, and each refresh lands
    // well before the token it replaces expires.
    const first = userToken('rita', {}, 8);
    const { client, sockets, closes } = trackedClient(first);
    const events = await subscribed(client, 'rita');
    const second = userToken('rita', {}, 14);
    expect(await refresh(client, second)).toEqual({ data: { refreshToken: { expiresAt: expiryOf(second) } } });
    expect(expiryOf(second)).toBeGreaterThan(expiryOf(first));
    await delivered(events, 'rita', 'on the first token', 0);

    // Past the first token's expiry: it would have closed the socket by now.
    await clockReads(expiryOf(first) + 1000);
    expect(closes).toEqual([]);
    const third = userToken('rita', {}, 12);
    expect(await refresh(client, third)).toEqual({ data: { refreshToken: { expiresAt: expiryOf(third) } } });
    await delivered(events, 'rita', 'on the second token', 1);

    // Past the second token's expiry too.
    expect(expiryOf(third)).toBeGreaterThan(expiryOf(second));
    await clockReads(expiryOf(second) + 1000);
    await delivered(events, 'rita', 'on the third token', 2);
    expect(closes).toEqual([]);
    expect(sockets).toHaveLength(1);
    expect(sockets[0]?.readyState).toBe(WebSocket.OPEN);
    const during = await scrape();
    expect(sample(during, 'herald_connections', 'websocket')).toBe(1);
    expect(sample(during, 'herald_token_refreshes_total')).toBe(refreshesBefore + 2);
    expect(events.completed).toBe(false);

    // Not refreshed again: closed at the third token's expiry, as any connection is.
    await waitFor(() => closes.length > 0, 'the socket to close at the third token\'s expiry', expiryOf(third) - Date.now() + CLOSE_BOUND_MS);
    expect(closes).toEqual([{ code: 4403, reason: 'Forbidden: token expired', at: expect.any(Number) }]);
    expect(closes[0]?.at).toBeGreaterThanOrEqual(expiryOf(third));
    expect(sockets).toHaveLength(1);
    expect(events.results).toHaveLength(3);
  });

  it('closes a connection that is never refreshed at its token\'s expiry, with 4403', async () => {
    const token = userToken('nora', {}, 6);
    const { client, closes } = trackedClient(token);
    const events = await subscribed(client, 'nora');
    await waitFor(() => closes.length > 0, 'the socket to close at expiry', expiryOf(token) - Date.now() + CLOSE_BOUND_MS);
    expect(closes).toEqual([{ code: 4403, reason: 'Forbidden: token expired', at: expect.any(Number) }]);
    expect(closes[0]?.at).toBeGreaterThanOrEqual(expiryOf(token));
    await events.ended();
    await waitFor(async () => (await redis.numsub(channels.audienceChannel('acme', 'USER', 'nora'))) === 0, 'the channel to be released');
  });

  it('refuses another principal\'s or a bad token, changes nothing, and still closes at the old expiry', async () => {
    const refusalsBefore = sample(await scrape(), 'herald_token_refresh_refusals_total') ?? 0;
    const refreshesBefore = sample(await scrape(), 'herald_token_refreshes_total') ?? 0;
    const token = userToken('omar', { stores: ['s1'] }, 10);
    const { client, sockets, closes } = trackedClient(token);
    const events = await subscribed(client, 'omar');

    // Each refused token is valid for an hour: had one been taken, the socket would stay open.
    const refusals: Array<[string, string, string, RegExp]> = [
      ['another user', userToken('bob', { stores: ['s1'] }), 'FORBIDDEN', /^the "sub" claims .* differ: a connection's token can only be replaced by one for the same user and tenant$/],
      ['another tenant', userToken('omar', { tenant: 'globex', stores: ['s1'] }), 'FORBIDDEN', /^the "tenant" claims .* differ: a connection's/],
      ['other stores', userToken('omar', { stores: ['s1', 's2'] }), 'FORBIDDEN', /^the "stores" claims .* differ: reconnect with the new token$/],
      ['another scope', userToken('omar', { stores: ['s1'], scope: 'notifications:publish' }), 'FORBIDDEN', /^the "scope" claims .* differ: reconnect with the new token$/],
      ['an expired token', userToken('omar', { stores: ['s1'] }, -10), 'UNAUTHENTICATED', /^token expired$/],
      ['garbage', 'garbage', 'UNAUTHENTICATED', /jwt malformed/],
    ];
    for (const [refused, newToken, code, message] of refusals) {
      const { data, errors } = await refresh(client, newToken);
      expect(data, refused).toBeNull();
      expect(errors?.[0]?.extensions?.['code'], refused).toBe(code);
      expect(errors?.[0]?.message, refused).toMatch(message);
    }
    // No subscription ended: the one open still delivers.
    await delivered(events, 'omar', 'after the refusals', 0);
    const after = await scrape();
    expect(sample(after, 'herald_token_refresh_refusals_total')).toBe(refusalsBefore + refusals.length);
    expect(sample(after, 'herald_token_refreshes_total')).toBe(refreshesBefore);
    // Refusals are logged at info (production logs JSON lines; the default level is info).
    expect(subscribe.output()).toContain('token refresh refused (FORBIDDEN)');

    await waitFor(() => closes.length > 0, 'the socket to close at the old expiry', expiryOf(token) - Date.now() + CLOSE_BOUND_MS);
    expect(closes).toEqual([{ code: 4403, reason: 'Forbidden: token expired', at: expect.any(Number) }]);
    expect(closes[0]?.at).toBeGreaterThanOrEqual(expiryOf(token));
    expect(sockets).toHaveLength(1);
  });
});

describe('refreshToken elsewhere', () => {
  it('is BAD_REQUEST over HTTP: each request carries its own token', async () => {
    const response = await postGraphQL(httpUrl, REFRESH, { token: userToken('hugo'), variables: { token: userToken('hugo') } });
    expect(response.body.data ?? null).toBeNull();
    expect(errorCode(response)).toBe('BAD_REQUEST');
    expect(response.body.errors?.[0]?.message).toBe(REFRESH_NEEDS_A_CONNECTION);
  });

  it('is BAD_REQUEST over SSE', async () => {
    const response = await fetch(httpUrl, {
      method: 'POST',
      headers: { accept: 'text/event-stream', 'content-type': 'application/json', authorization: `Bearer ${userToken('hugo')}` },
      body: JSON.stringify({ query: REFRESH, variables: { token: userToken('hugo') } }),
    });
    expect(response.status).toBe(200);
    const events = readEvents(response);
    const event = await events.next();
    expect(event.event).toBe('next');
    expect(JSON.parse(event.data)).toMatchObject({ data: null, errors: [{ message: REFRESH_NEEDS_A_CONNECTION, extensions: { code: 'BAD_REQUEST' } }] });
    expect((await events.next()).event).toBe('complete');
  });

  it('is WRONG_SERVER on the publish server', async () => {
    const response = await postGraphQL(publishUrl, REFRESH, { token: serviceToken(), variables: { token: serviceToken() } });
    expect(errorCode(response)).toBe('WRONG_SERVER');
  });
});
