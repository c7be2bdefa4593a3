/**
 * The GraphQL edge of both servers in production mode: nothing exposed by default
 * (introspection, suggestions, GraphiQL) unless switched on, limits that count
 * introspection and `__typename` aliases, one error mask on every path (HTTP, SSE,
 * WebSocket), malformed requests answered 400, subscriptions refused on the plain HTTP
 * path, and a publisher's full batch let through while anonymous bodies stay small.
 */
import { getIntrospectionQuery } from 'graphql';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Logger } from '../../src/common/logger.js';
import { SUBSCRIBE_ELSEWHERE } from '../../src/transports/http/yoga.js';
import { channels, startHeraldPair, stopAll, waitFor } from '../support/herald.js';
import { postGraphQL, readEvents } from '../support/http.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import { serviceToken, userToken } from '../support/tokens.js';
import { closeAllClients, collect, ON_NOTIFICATION, rawSocket, wsClient } from '../support/ws.js';

let redis: RedisServer;
/** Production defaults. */
let production: Awaited<ReturnType<typeof startHeraldPair>>;
/** Production with GRAPHQL_INTROSPECTION=on and PLAYGROUND=on. */
let opened: Awaited<ReturnType<typeof startHeraldPair>>;
/** Development defaults. */
let development: Awaited<ReturnType<typeof startHeraldPair>>;

/** What production logged at `error` since the last test began. */
const errors: string[] = [];
const developmentErrors: string[] = [];
const capture: Logger = { info: () => undefined, warn: () => undefined, error: (...args: unknown[]) => errors.push(args.map(String).join(' ')) };

beforeAll(async () => {
  redis = await startRedisServer();
  production = await startHeraldPair(redis.url, { production: true, logger: capture });
  opened = await startHeraldPair(redis.url, { production: true, introspection: true, playground: true, logger: capture });
  development = await startHeraldPair(redis.url, { logger: { ...capture, error: (...args: unknown[]) => developmentErrors.push(args.map(String).join(' ')) } });
});
beforeEach(() => {
  errors.length = 0;
});
afterAll(async () => {
  await closeAllClients();
  await stopAll();
  await redis.stop();
});

/** A bidirectional override, which would make a message read backwards. */
const RLO = '\u202E';
const SCHEMA_QUERY = '{ __schema { queryType { name } } }';

/** An SSE subscription's first event, parsed. */
async function firstSseEvent(url: string, token: string, query: string, variables: Record<string, unknown>) {
  const abort = new AbortController();
  const response = await fetch(`${url}?query=${encodeURIComponent(query)}&variables=${encodeURIComponent(JSON.stringify(variables))}`, {
    headers: { Accept: 'text/event-stream', Authorization: `Bearer ${token}` },
    signal: abort.signal,
  });
  try {
    const event = await readEvents(response).next();
    return { event, payload: JSON.parse(event.data) as { errors?: Array<{ message: string; extensions?: { code?: string } }> } };
  } finally {
    abort.abort();
  }
}

describe('production exposes nothing by default', () => {
  it('refuses introspection with FORBIDDEN on both servers and over WebSocket; GRAPHQL_INTROSPECTION=on allows it', async () => {
    for (const url of [production.subscribe.httpUrl, production.publish.url]) {
      const response = await postGraphQL(url, SCHEMA_QUERY, { token: serviceToken() });
      expect(response.body.data).toBeUndefined();
      expect(response.body.errors?.[0]).toMatchObject({
        message: 'introspection is turned off, so "__schema" cannot be queried (GRAPHQL_INTROSPECTION)',
        extensions: { code: 'FORBIDDEN' },
      });
    }
    const socket = await rawSocket(production.subscribe.wsUrl);
    socket.send({ type: 'connection_init', payload: { authorization: `Bearer ${userToken('alice')}` } });
    expect(await socket.nextMessage()).toMatchObject({ type: 'connection_ack' });
    socket.send({ id: '1', type: 'subscribe', payload: { query: SCHEMA_QUERY } });
    expect(await socket.nextMessage()).toMatchObject({ id: '1', type: 'error', payload: [{ extensions: { code: 'FORBIDDEN' } }] });

    for (const url of [opened.subscribe.httpUrl, opened.publish.url, development.subscribe.httpUrl]) {
      expect((await postGraphQL(url, SCHEMA_QUERY)).body).toEqual({ data: { __schema: { queryType: { name: 'Query' } } } });
    }
  });

  it('strips "Did you mean" suggestions in production, and only there', async () => {
    for (const url of [production.subscribe.httpUrl, production.publish.url]) {
      const response = await postGraphQL(url, '{ viewr { name } }', { token: serviceToken() });
      expect(response.body.errors?.[0]?.message).toBe('Cannot query field "viewr" on type "Query".');
    }
    const enumValue = await postGraphQL(production.publish.url, 'mutation { sendNotification(to: "a", text: "b", audience: USR) { id } }', {
      token: serviceToken(),
    });
    expect(enumValue.body.errors?.[0]?.message).toBe('Value "USR" does not exist in "Audience" enum.');
    const dev = await postGraphQL(development.publish.url, '{ viewr { name } }', { token: serviceToken() });
    expect(dev.body.errors?.[0]?.message).toBe('Cannot query field "viewr" on type "Query". Did you mean "viewer"?');
  });

  it('serves GraphiQL only in development, or with PLAYGROUND=on', async () => {
    const page = (url: string) => fetch(url, { headers: { Accept: 'text/html' } });
    const off = await page(production.subscribe.httpUrl);
    expect(off.status).not.toBe(200);
    expect(await off.text()).not.toContain('<title>Herald</title>');
    for (const url of [opened.subscribe.httpUrl, development.subscribe.httpUrl]) {
      const on = await page(url);
      expect(on.status).toBe(200);
      expect(await on.text()).toContain('<title>Herald</title>');
    }
  });

  it('applies MAX_QUERY_DEPTH to introspection, and lets GraphiQL’s own schema query through', async () => {
    const deep = '{ __schema { types { fields { type { fields { type { fields { type { name } } } } } } } } }';
    const refused = await postGraphQL(opened.subscribe.httpUrl, deep);
    expect(refused.body.errors).toEqual([
      expect.objectContaining({ message: 'Query depth limit of 8 exceeded, found 9. (MAX_QUERY_DEPTH)', extensions: { code: 'LIMIT_EXCEEDED' } }),
    ]);
    const graphiql = await postGraphQL(development.subscribe.httpUrl, getIntrospectionQuery({ descriptions: true, inputValueDeprecation: true }));
    expect(graphiql.body.errors).toBeUndefined();
    expect(graphiql.body.data?.['__schema']).toBeDefined();
  });

  it('counts __typename aliases against MAX_QUERY_ALIASES on both servers', async () => {
    const query = `{ ${Array.from({ length: 200 }, (_, i) => `a${i}: __typename`).join(' ')} }`;
    for (const url of [production.subscribe.httpUrl, production.publish.url]) {
      const response = await postGraphQL(url, query);
      expect(response.body.data).toBeUndefined();
      expect(response.body.errors?.[0]).toMatchObject({ message: 'Aliases limit of 10 exceeded, found 200. (MAX_QUERY_ALIASES)', extensions: { code: 'LIMIT_EXCEEDED' } });
    }
  });
});

describe('one error mask on every path', () => {
  // A tenant whose history key holds the wrong type: every history read fails inside
  // Redis' script with WRONGTYPE, an internal error the client must never see.
  const tenant = 'broken';
  const cursor = 'e1_1700000000000-1';
  const query = 'subscription ($u: String!, $s: ID) { onNotificationReceived(userName: $u, since: $s) { text } }';
  beforeAll(async () => {
    await redis.client().set(channels.tenantKey(tenant), 'not a hash');
  });

  it('hides an internal error from a WebSocket subscriber in production, and logs it once', async () => {
    const token = userToken('wanda', { tenant });
    const query = 'subscription ($u: String!, $s: ID) { onNotificationReceived(userName: $u, since: $s) { text } }';
    const events = collect(wsClient(production.subscribe.wsUrl, { token }), query, { u: 'wanda', s: cursor });
    const first = await events.nth(0);
    expect(first).toEqual({ errors: [expect.objectContaining({ message: 'Unexpected error.', extensions: { code: 'INTERNAL_SERVER_ERROR' } })] });
    expect(JSON.stringify(first)).not.toMatch(/WRONGTYPE|script/);
    await waitFor(() => errors.length > 0, 'the error to be logged');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain('WRONGTYPE');
  });

  it('hides an internal error from an SSE subscriber in production, and logs it once', async () => {
    const { payload } = await firstSseEvent(production.subscribe.httpUrl, userToken('wanda', { tenant }), query, { u: 'wanda', s: cursor });
    expect(payload.errors).toEqual([expect.objectContaining({ message: 'Unexpected error.', extensions: { code: 'INTERNAL_SERVER_ERROR' } })]);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain('WRONGTYPE');
  });

  it('hides an internal error from a publisher in production; outside production shows it, with the same code', async () => {
    const send = (url: string) => postGraphQL(url, 'mutation { sendNotification(to: "wanda", text: "x") { id } }', { token: serviceToken({ tenant }) });
    expect((await send(production.publish.url)).body.errors).toEqual([
      expect.objectContaining({ message: 'Unexpected error.', extensions: { code: 'INTERNAL_SERVER_ERROR' } }),
    ]);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain('WRONGTYPE');
    expect((await send(development.publish.url)).body.errors?.[0]).toMatchObject({
      message: expect.stringContaining('WRONGTYPE'),
      extensions: { code: 'INTERNAL_SERVER_ERROR' },
    });
    expect(developmentErrors.filter((line) => line.includes('WRONGTYPE'))).toHaveLength(1);
  });

  it('never echoes a bidirectional override or a control character, on any path', async () => {
    const name = `${RLO}ecila\u0007`;
    const escaped = '\\u202eecila\\u0007';
    // Publish server (graphql-http): a refused `to`.
    const publish = await fetch(production.publish.url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${serviceToken()}` },
      body: JSON.stringify({ query: 'mutation ($to: String!) { sendNotification(to: $to, text: "x") { id } }', variables: { to: name } }),
    });
    // Subscribe server (Yoga): an enum value echoed by graphql-js.
    const yoga = await fetch(production.subscribe.httpUrl, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${userToken('alice')}` },
      body: JSON.stringify({ query: 'query ($n: Int) { notifications(first: $n) { pageInfo { hasNextPage } } }', variables: { n: name } }),
    });
    for (const response of [publish, yoga]) {
      const text = await response.text();
      expect(text).not.toContain(RLO);
      expect(text).toContain(escaped.replace(/\\/g, '\\\\')); // as JSON writes a backslash
    }
    // WebSocket and SSE: a refused userName.
    const ws = collect(wsClient(production.subscribe.wsUrl, { token: userToken('alice') }), ON_NOTIFICATION, { userName: name });
    const sse = await firstSseEvent(production.subscribe.httpUrl, userToken('alice'), ON_NOTIFICATION, { userName: name });
    for (const message of [(await ws.nth(0)).errors?.[0]?.message, sse.payload.errors?.[0]?.message]) {
      expect(message).toContain(`userName "${escaped}"`);
      expect(message).not.toContain(RLO);
    }
    expect(sse.event.data).not.toContain(RLO);
    expect(errors).toEqual([]);
  });
});

describe('malformed requests', () => {
  it.each<[string, string, string]>([
    ['text that is not JSON', `${RLO}hello`, 'the body is not valid JSON'],
    ['an empty body', '', 'the body is not valid JSON'],
    ['null', 'null', 'the body must be a JSON object, not null'],
    ['an array', '[{"query":"{ viewer { name } }"}]', 'the body must be a JSON object, not an array'],
    ['a huge number', '1e999', 'the body must be a JSON object, not a number'],
    ['a string', '"{ viewer { name } }"', 'the body must be a JSON object, not a string'],
    ['no query', '{"variables":{}}', '"query" is missing'],
    ['a query of the wrong type', '{"query":["{ a }"]}', '"query" must be a string, not an array'],
    ['variables of the wrong type', '{"query":"{ viewer { name } }","variables":"{}"}', '"variables" must be an object, not a string'],
    ['an operationName of the wrong type', '{"query":"{ viewer { name } }","operationName":7}', '"operationName" must be a string, not a number'],
  ])('the publish server answers %s with 400 BAD_REQUEST naming it, and logs no error', async (_what, body, message) => {
    const response = await fetch(production.publish.url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${serviceToken()}` },
      body,
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({ errors: [{ message, extensions: { code: 'BAD_REQUEST' } }] });
    expect(errors).toEqual([]);
  });

  it('the subscribe server answers them with 400 BAD_REQUEST too, quoting none of the body', async () => {
    for (const body of [`${RLO}hello`, 'null', '"x"', '{"query":5}']) {
      const response = await fetch(production.subscribe.httpUrl, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
      expect(response.status).toBe(400);
      const text = await response.text();
      expect(JSON.parse(text)).toMatchObject({ errors: [{ extensions: { code: 'BAD_REQUEST' } }] });
      expect(text).not.toContain('hello');
    }
    expect(errors).toEqual([]);
  });
});

describe('subscriptions on the plain HTTP path', () => {
  it('are refused with 400 naming WebSocket and SSE, and subscribe nothing', async () => {
    const query = 'subscription { onNotificationReceived(userName: "alice") { text } }';
    const post = await fetch(production.subscribe.httpUrl, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${userToken('alice')}` },
      body: JSON.stringify({ query }),
    });
    const get = await fetch(`${production.subscribe.httpUrl}?query=${encodeURIComponent(query)}`, { headers: { Authorization: `Bearer ${userToken('alice')}` } });
    for (const response of [post, get]) {
      expect(response.status).toBe(400);
      expect(await response.json()).toEqual({ errors: [{ message: SUBSCRIBE_ELSEWHERE, extensions: { code: 'BAD_REQUEST' } }] });
    }
    expect(SUBSCRIBE_ELSEWHERE).toMatch(/WebSocket.*Accept: text\/event-stream/);
    expect(await redis.numsub(channels.audienceChannel('acme', 'USER', 'alice'))).toBe(0);
  });
});

describe('batches', () => {
  const BATCH = 'mutation ($n: [NotificationInput!]!) { sendNotifications(notifications: $n) { id } }';
  const fullBatch = (text: string) => JSON.stringify({ query: BATCH, variables: { n: Array.from({ length: 1000 }, (_, i) => ({ to: `user-${i}`, text })) } });
  const post = (body: string, token?: string) =>
    fetch(production.publish.url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      body,
    });

  it('a publisher sends a full batch of 1000 notifications of MAX_TEXT_LENGTH characters; anyone else is refused it unread', async () => {
    const body = fullBatch('é'.repeat(2000)); // UTF-8 of 2 bytes a character: about 4 MB
    expect(Buffer.byteLength(body)).toBeGreaterThan(4_000_000);
    const response = await post(body, serviceToken());
    expect(response.status).toBe(200);
    const result = (await response.json()) as { data?: { sendNotifications: unknown[] }; errors?: unknown };
    expect(result.errors).toBeUndefined();
    expect(result.data?.sendNotifications).toHaveLength(1000);

    for (const token of [undefined, userToken('alice'), 'not.a.token']) {
      const refused = await post(body, token);
      expect(refused.status).toBe(413);
      expect(await refused.json()).toEqual({
        errors: [{ message: 'request body is larger than 65536 bytes (MAX_MESSAGE_BYTES)', extensions: { code: 'LIMIT_EXCEEDED' } }],
      });
    }
  });
});
