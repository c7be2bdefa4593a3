/**
 * The HTTP side of both servers: SSE subscriptions with a real SSE client, CORS, body
 * and text limits, health and readiness, GraphiQL.
 */
import { request as httpRequest } from 'node:http';
import { createClient as createSseClient, type Client as SseClient } from 'graphql-sse';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { channels, startHeraldPair, stopAll, waitFor } from '../support/herald.js';
import { errorCode, postGraphQL, send, SEND, type GraphQLResponse } from '../support/http.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import { serviceToken, userToken } from '../support/tokens.js';
import { ON_NOTIFICATION } from '../support/ws.js';

let redis: RedisServer;
let herald: Awaited<ReturnType<typeof startHeraldPair>>;
const sseClients: SseClient[] = [];

beforeAll(async () => {
  redis = await startRedisServer();
  herald = await startHeraldPair(redis.url, {
    corsOrigins: ['https://app.example.com'],
    limits: { maxMessageBytes: 2048, maxBatchBytes: 8192, maxTextLength: 100 },
  });
});
afterEach(() => sseClients.splice(0).forEach((client) => client.dispose()));
afterAll(async () => {
  await stopAll();
  await redis.stop();
});

function sseClient(token?: string): SseClient {
  const client = createSseClient({
    url: herald.subscribe.httpUrl,
    retryAttempts: 0,
    headers: token ? { Authorization: `Bearer ${token}` } : {},
  });
  sseClients.push(client);
  return client;
}

const numsub = (channel: string) => redis.numsub(channel);

describe('SSE subscriptions', () => {
  it('delivers notifications to a real SSE client authenticated by the Authorization header', async () => {
    const subscription = sseClient(userToken('alice')).iterate<{ onNotificationReceived: { text: string } }>({
      query: ON_NOTIFICATION,
      variables: { userName: 'alice' },
    });
    const first = subscription.next();
    const channel = channels.audienceChannel('acme', 'USER', 'alice');
    await waitFor(async () => (await numsub(channel)) === 1, 'the SSE subscription');
    expect(await send(herald.publish.url, serviceToken(), 'alice', 'over sse')).toBe(1);
    expect((await first).value).toMatchObject({ data: { onNotificationReceived: { text: 'over sse' } } });
    await subscription.return?.();
    await waitFor(async () => (await numsub(channel)) === 0, 'the channel to be released');
  });

  it('an aborted SSE request releases its channels', async () => {
    const abort = new AbortController();
    const url = `${herald.subscribe.httpUrl}?query=${encodeURIComponent(ON_NOTIFICATION)}&variables=${encodeURIComponent('{"userName":"bob"}')}`;
    const response = await fetch(url, {
      headers: { Accept: 'text/event-stream', Authorization: `Bearer ${userToken('bob', { stores: ['s1'] })}` },
      signal: abort.signal,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    const store = channels.audienceChannel('acme', 'STORE', 's1');
    await waitFor(async () => (await numsub(store)) === 1, 'the subscription');
    abort.abort();
    await waitFor(async () => (await numsub(store)) === 0, 'the store channel to be released');
    await waitFor(async () => (await numsub(channels.audienceChannel('acme', 'USER', 'bob'))) === 0, 'the user channel to be released');
  });

  it('subscribing as another user over SSE is FORBIDDEN', async () => {
    const subscription = sseClient(userToken('mallory')).iterate({ query: ON_NOTIFICATION, variables: { userName: 'alice' } });
    const result = await subscription.next();
    expect(result.value).toMatchObject({ errors: [{ extensions: { code: 'FORBIDDEN' } }] });
    expect(await numsub(channels.audienceChannel('acme', 'USER', 'alice'))).toBe(0);
  });

  it('subscribing over SSE without a token is UNAUTHENTICATED', async () => {
    const subscription = sseClient().iterate({ query: ON_NOTIFICATION, variables: { userName: 'alice' } });
    const result = await subscription.next();
    expect(result.value).toMatchObject({ errors: [{ extensions: { code: 'UNAUTHENTICATED' } }] });
  });

  it('an SSE stream ends with UNAUTHENTICATED when its token expires, and releases its channels', async () => {
    const subscription = sseClient(userToken('olga', {}, 3)).iterate({ query: ON_NOTIFICATION, variables: { userName: 'olga' } });
    const channel = channels.audienceChannel('acme', 'USER', 'olga');
    const first = subscription.next();
    await waitFor(async () => (await numsub(channel)) === 1, 'the SSE subscription');
    const ended = await first;
    expect(ended.value).toMatchObject({ errors: [{ message: 'token expired', extensions: { code: 'UNAUTHENTICATED' } }] });
    await waitFor(async () => (await numsub(channel)) === 0, 'the channel to be released');
    expect(await send(herald.publish.url, serviceToken(), 'olga', 'after expiry')).toBe(0);
  });

  it('a bad token is refused with HTTP 401 before anything runs', async () => {
    const response = await postGraphQL(herald.subscribe.httpUrl, '{ viewer { name } }', { token: 'not.a.jwt' });
    expect(response.status).toBe(401);
    expect(errorCode(response)).toBe('UNAUTHENTICATED');
  });
});

describe('queries', () => {
  it('`viewer` tells who the token says you are', async () => {
    const response = await postGraphQL(herald.subscribe.httpUrl, '{ viewer { name tenant stores scopes } }', {
      token: userToken('alice', { stores: ['s1'], scope: 'a b' }),
    });
    expect(response.body).toEqual({ data: { viewer: { name: 'alice', tenant: 'acme', stores: ['s1'], scopes: ['a', 'b'] } } });
  });

  it('a subscription sent to the publish server names the subscribe server', async () => {
    const response = await postGraphQL(herald.publish.url, 'subscription { onNotificationReceived(userName: "a") { text } }', {
      token: userToken('a'),
    });
    expect(errorCode(response)).toBe('WRONG_SERVER');
    expect(response.body.errors?.[0]?.message).toContain('subscribe on the subscribe server');
  });

  it('serves GraphiQL to a browser', async () => {
    const response = await fetch(herald.subscribe.httpUrl, { headers: { Accept: 'text/html' } });
    expect(response.status).toBe(200);
    expect(await response.text()).toContain('<title>Herald</title>');
  });
});

describe('CORS', () => {
  const preflight = (url: string, origin: string) =>
    fetch(url, {
      method: 'OPTIONS',
      headers: { Origin: origin, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization, content-type' },
    });

  it.each(['subscribe', 'publish'] as const)('the %s server answers a preflight from an allowlisted origin', async (which) => {
    const url = which === 'subscribe' ? herald.subscribe.httpUrl : herald.publish.url;
    const response = await preflight(url, 'https://app.example.com');
    expect(response.status).toBe(204);
    expect(response.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    expect(response.headers.get('access-control-allow-credentials')).toBe('true');
    expect(response.headers.get('access-control-allow-headers')).toMatch(/Authorization/);
    expect(response.headers.get('vary')).toBe('Origin');
  });

  it.each(['subscribe', 'publish'] as const)('the %s server refuses another origin without naming it in any CORS header', async (which) => {
    const url = which === 'subscribe' ? herald.subscribe.httpUrl : herald.publish.url;
    const response = await preflight(url, 'https://evil.example.com');
    expect(response.status).toBe(403);
    // Not reflected: the page cannot read the refusal (the server's log names CORS_ORIGINS; a non-browser client reads the body).
    expect(response.headers.get('access-control-allow-origin')).toBeNull();
    expect(response.headers.get('access-control-allow-credentials')).toBeNull();
    expect(response.headers.get('access-control-allow-methods')).toBeNull();
    expect(await response.json()).toEqual({
      errors: [{ message: "origin https://evil.example.com is not allowed: the server's CORS_ORIGINS must list it (comma-separated exact origins, e.g. CORS_ORIGINS=https://evil.example.com)", extensions: { code: 'FORBIDDEN' } }],
    });

    const post = await fetch(url, {
      method: 'POST',
      headers: { Origin: 'https://evil.example.com', 'Content-Type': 'application/json', Authorization: `Bearer ${serviceToken()}` },
      body: JSON.stringify({ query: SEND, variables: { to: 'alice', text: 'x' } }),
    });
    expect(post.status).toBe(403);
    expect(post.headers.get('access-control-allow-origin')).toBeNull();
    expect(post.headers.get('access-control-allow-credentials')).toBeNull();
    expect((await post.json()).errors[0].extensions.code).toBe('FORBIDDEN');
  });

  it('a WebSocket upgrade from another origin is refused with 403 and no CORS header', async () => {
    const response = await new Promise<{ status: number; headers: Record<string, unknown> }>((resolve, reject) => {
      const request = httpRequest(herald.subscribe.httpUrl, {
        headers: {
          Connection: 'Upgrade',
          Upgrade: 'websocket',
          'Sec-WebSocket-Version': '13',
          'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
          'Sec-WebSocket-Protocol': 'graphql-transport-ws',
          Origin: 'https://evil.example.com',
        },
      });
      request.once('response', (incoming) => {
        incoming.resume();
        resolve({ status: incoming.statusCode ?? 0, headers: incoming.headers });
      });
      request.once('upgrade', () => reject(new Error('the upgrade was accepted')));
      request.once('error', reject);
      request.end();
    });
    expect(response.status).toBe(403);
    expect(Object.keys(response.headers).filter((name) => name.startsWith('access-control-'))).toEqual([]);
  });

  it('a request with no Origin (a service) gets no CORS headers and is served', async () => {
    const response = await postGraphQL(herald.publish.url, SEND, { token: serviceToken(), variables: { to: 'nobody', text: 'x' } });
    expect(response.body).toEqual({ data: { sendNotification: { id: expect.any(String), receivedUsers: 0, duplicate: false } } });
    expect(response.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('limits', () => {
  const post = (url: string, text: string, token?: string) =>
    fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify({ query: SEND, variables: { to: 'alice', text } }),
    });

  it.each([
    ['no token', undefined],
    ['a token without the publish scope', userToken('alice')],
  ])('refuses a body over MAX_MESSAGE_BYTES with HTTP 413, with %s', async (_what, token) => {
    const response = await post(herald.publish.url, 'x'.repeat(3000), token);
    expect(response.status).toBe(413);
    expect(await response.json()).toEqual({
      errors: [{ message: 'request body is larger than 2048 bytes (MAX_MESSAGE_BYTES)', extensions: { code: 'LIMIT_EXCEEDED' } }],
    });
  });

  it('reads up to MAX_BATCH_BYTES from a token with the publish scope, and no more', async () => {
    const bigger = await post(herald.publish.url, 'x'.repeat(3000), serviceToken());
    expect(bigger.status).toBe(200); // read, then refused for its text, not its size
    expect(((await bigger.json()) as GraphQLResponse['body']).errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');

    const tooBig = await post(herald.publish.url, 'x'.repeat(9000), serviceToken());
    expect(tooBig.status).toBe(413);
    expect(await tooBig.json()).toEqual({
      errors: [{ message: 'request body is larger than 8192 bytes (MAX_BATCH_BYTES)', extensions: { code: 'LIMIT_EXCEEDED' } }],
    });
    // The subscribe server has no batches: MAX_MESSAGE_BYTES whatever the token.
    expect((await post(herald.subscribe.httpUrl, 'x'.repeat(3000), serviceToken())).status).toBe(413);
  });

  it('refuses a chunked POST without Content-Length with HTTP 411', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const request = httpRequest(herald.publish.url, { method: 'POST', headers: { 'Content-Type': 'application/json' } }, (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      });
      request.on('error', reject);
      request.write('{"query":');
      request.end('"{ viewer { name } }"}');
    });
    expect(status).toBe(411);
  });

  it('refuses a text over MAX_TEXT_LENGTH, naming the limit', async () => {
    const response = await postGraphQL(herald.publish.url, SEND, { token: serviceToken(), variables: { to: 'alice', text: 'x'.repeat(101) } });
    expect(errorCode(response)).toBe('BAD_USER_INPUT');
    expect(response.body.errors?.[0]?.message).toBe('text is longer than 100 characters (MAX_TEXT_LENGTH)');
  });

  it('refuses an empty text and an unknown audience', async () => {
    const empty = await postGraphQL(herald.publish.url, SEND, { token: serviceToken(), variables: { to: 'alice', text: '' } });
    expect(errorCode(empty)).toBe('BAD_USER_INPUT');
    const audience = await postGraphQL(herald.publish.url, SEND, {
      token: serviceToken(),
      variables: { to: 'alice', text: 'x', audience: 'EVERYONE' },
    });
    expect(audience.body.errors?.[0]?.message).toContain('EVERYONE');
    expect(audience.body.data).toBeUndefined();
  });
});

describe('health', () => {
  it.each(['subscribe', 'publish'] as const)('the %s server answers /healthz and /readyz', async (which) => {
    const base = (which === 'subscribe' ? herald.subscribe.httpUrl : herald.publish.url).replace('/graphql', '');
    expect(await (await fetch(`${base}/healthz`)).json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready' });
    const missing = await fetch(`${base}/nope`);
    expect(missing.status).toBe(404);
  });
});

describe('a plain mutation on the publish server (run compiled, without execute)', () => {
  it('over GET is refused with 405, and nothing is stored', async () => {
    const query = 'mutation { sendNotification(to: "getter", text: "over GET") { id } }';
    const response = await fetch(`${herald.publish.url}?query=${encodeURIComponent(query)}`, { headers: { Authorization: `Bearer ${serviceToken()}` } });
    expect(response.status).toBe(405);
    expect(await redis.client().exists(channels.destination('acme', 'USER', 'getter').stream)).toBe(0);
  });

  it('answers in the media type the client accepts, the same result in each', async () => {
    const query = 'mutation Send($to: String!) { sendNotification(to: $to, text: "twice") { __typename duplicate } }';
    const answers = await Promise.all(
      ['application/graphql-response+json', 'application/json'].map(async (accept) => {
        const response = await postGraphQL(herald.publish.url, query, { token: serviceToken(), variables: { to: 'negotiated' }, headers: { Accept: accept } });
        return { type: response.headers.get('content-type'), status: response.status, body: response.body };
      }),
    );
    expect(answers).toEqual([
      { type: 'application/graphql-response+json; charset=utf-8', status: 200, body: { data: { sendNotification: { __typename: 'SendResult', duplicate: false } } } },
      { type: 'application/json; charset=utf-8', status: 200, body: { data: { sendNotification: { __typename: 'SendResult', duplicate: false } } } },
    ]);
    expect(await redis.client().xlen(channels.destination('acme', 'USER', 'negotiated').stream)).toBe(2);
  });

  it('a failure is located at the field, with its code, and the data is null', async () => {
    const response = await postGraphQL(herald.publish.url, 'mutation { sendNotification(to: "bob", text: "no scope") { id } }', { token: userToken('bob') });
    expect(response.status).toBe(200);
    expect(response.body).toEqual({
      errors: [{ message: expect.any(String), locations: [{ line: 1, column: 12 }], path: ['sendNotification'], extensions: { code: 'FORBIDDEN' } }],
      data: null,
    });
  });

  it('a variable of the wrong type is refused before anything runs, as execute refuses it', async () => {
    const response = await postGraphQL(herald.publish.url, SEND, { token: serviceToken(), variables: { to: 42, text: 'typed' } });
    // graphql-http answers execute's coercion errors with 200, whatever the media type.
    expect(response.status).toBe(200);
    expect(response.body.errors?.[0]?.message).toContain('Variable "$to" got invalid value 42');
    expect(response.body.data).toBeUndefined();
  });
});
