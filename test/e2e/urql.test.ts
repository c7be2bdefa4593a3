/**
 * urql's default client against the compiled subscribe and publish servers on a real
 * Redis (it once got an event stream for a query, and its process died): `@urql/core`
 * with `cacheExchange, fetchExchange` and nothing else but the token runs a query and a
 * user's own mutations, and gets JSON, though its `Accept` names `text/event-stream` too.
 * A subscription still gets Herald's event stream: urql's own (`fetchSubscriptions`), a
 * subscription sent with urql's query header, and graphql-sse's client.
 */
import { cacheExchange, Client, fetchExchange, gql, type OperationResult } from '@urql/core';
import { createClient as createSseClient } from 'graphql-sse';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { channels, waitFor } from '../support/herald.js';
import { postGraphQL, sendFull } from '../support/http.js';
import { startHeraldProcess, stopAllProcesses, type HeraldProcess } from '../support/process.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import { serviceToken, userToken } from '../support/tokens.js';
import { ON_NOTIFICATION } from '../support/ws.js';

/** What urql's `fetchExchange` sends with every query and mutation (@urql/core 6). */
const URQL_ACCEPT = 'application/graphql-response+json, application/graphql+json, application/json, text/event-stream, multipart/mixed';

let redis: RedisServer;
let subscribe: HeraldProcess;
let publish: HeraldProcess;
let subscribeUrl: string;
let publishUrl: string;

beforeAll(async () => {
  redis = await startRedisServer();
  const env = { REDIS_URL: redis.url };
  [subscribe, publish] = await Promise.all([startHeraldProcess('subscribe', { env, entry: 'dist' }), startHeraldProcess('publish', { env, entry: 'dist' })]);
  subscribeUrl = `http://127.0.0.1:${subscribe.subscribePort}/graphql`;
  publishUrl = `http://127.0.0.1:${publish.publishPort}/graphql`;
});
afterAll(async () => {
  await stopAllProcesses();
  await redis?.stop();
});

/** urql as its docs set it up, plus the user's token. */
function urqlClient(user: string, options: { fetchSubscriptions?: boolean } = {}): Client {
  return new Client({
    url: subscribeUrl,
    exchanges: [cacheExchange, fetchExchange],
    fetchOptions: { headers: { authorization: `Bearer ${userToken(user)}` } },
    ...options,
  });
}

describe("urql's default client on the subscribe server", () => {
  it('runs a query: JSON, not an event stream', async () => {
    const result = await urqlClient('una').query(gql`{ viewer { name tenant } }`, {}).toPromise();
    expect(result.error).toBeUndefined();
    expect(result.data).toEqual({ viewer: { __typename: 'Viewer', name: 'una', tenant: 'acme' } });

    // The same request as urql makes it (a GET within the URL limit), answered as the spec says.
    const response = await fetch(`${subscribeUrl}?query=${encodeURIComponent('{ viewer { name } }')}`, {
      headers: { accept: URQL_ACCEPT, authorization: `Bearer ${userToken('una')}` },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/graphql-response\+json/);
    expect(await response.json()).toEqual({ data: { viewer: { name: 'una' } } });
  });

  it("runs the user's own mutations (follow, markNotificationsRead) and reads what they changed", async () => {
    const client = urqlClient('ugo');
    const followed = await client.mutation(gql`mutation { follow(topic: "deploys") }`, {}).toPromise();
    expect(followed.error).toBeUndefined();
    expect(followed.data).toEqual({ follow: true });
    const following = await client.query(gql`{ following }`, {}, { requestPolicy: 'network-only' }).toPromise();
    expect(following.data).toEqual({ following: ['deploys'] });

    const sent = await sendFull(publishUrl, serviceToken(), { to: 'ugo', text: 'read me' });
    const marked = await client
      .mutation(gql`mutation ($upTo: ID!) { markNotificationsRead(userName: "ugo", upTo: $upTo) { readUpTo unreadCount } }`, { upTo: sent.id })
      .toPromise();
    expect(marked.error).toBeUndefined();
    expect(marked.data).toEqual({ markNotificationsRead: { __typename: 'ReadState', readUpTo: sent.id, unreadCount: 0 } });
    const list = await client.query(gql`{ notifications(first: 5) { readUpTo edges { read node { text } } } }`, {}, { requestPolicy: 'network-only' }).toPromise();
    expect(list.data).toMatchObject({ notifications: { readUpTo: sent.id, edges: [{ read: true, node: { text: 'read me' } }] } });

    // A POST with urql's header, as its mutations are sent: JSON.
    const response = await fetch(subscribeUrl, {
      method: 'POST',
      headers: { accept: URQL_ACCEPT, 'content-type': 'application/json', authorization: `Bearer ${userToken('ugo')}` },
      body: JSON.stringify({ query: 'mutation { unfollow(topic: "deploys") }' }),
    });
    expect(response.headers.get('content-type')).toMatch(/^application\/graphql-response\+json/);
    expect(await response.json()).toEqual({ data: { unfollow: true } });
  });
});

describe('subscriptions over SSE, with the headers real clients send', () => {
  const channel = (user: string) => channels.audienceChannel('acme', 'USER', user);

  it("urql's own SSE subscription (fetchSubscriptions: Accept text/event-stream, multipart/mixed) hears a notification", async () => {
    const client = urqlClient('uma', { fetchSubscriptions: true });
    let resolveFirst: (result: OperationResult) => void = () => undefined;
    const first = new Promise<OperationResult>((resolve) => (resolveFirst = resolve));
    const subscription = client.subscription(gql(ON_NOTIFICATION), { userName: 'uma' }).subscribe((result) => resolveFirst(result));
    await waitFor(async () => (await redis.numsub(channel('uma'))) === 1, 'the SSE subscription', 10_000);
    await sendFull(publishUrl, serviceToken(), { to: 'uma', text: 'over urql' });
    const result = await first;
    expect(result.error).toBeUndefined();
    expect(result.data).toMatchObject({ onNotificationReceived: { text: 'over urql' } });
    subscription.unsubscribe();
    await waitFor(async () => (await redis.numsub(channel('uma'))) === 0, 'the channel to be released', 10_000);
  });

  it("a subscription sent with urql's query header gets an event stream whose events carry ids", async () => {
    const abort = new AbortController();
    const response = await fetch(subscribeUrl, {
      method: 'POST',
      headers: { accept: URQL_ACCEPT, 'content-type': 'application/json', authorization: `Bearer ${userToken('ugne')}` },
      body: JSON.stringify({ query: ON_NOTIFICATION, variables: { userName: 'ugne' } }),
      signal: abort.signal,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    await waitFor(async () => (await redis.numsub(channel('ugne'))) === 1, 'the SSE subscription', 10_000);
    const sent = await sendFull(publishUrl, serviceToken(), { to: 'ugne', text: 'streamed' });
    const reader = response.body!.getReader();
    let text = '';
    while (!text.includes('streamed')) {
      const chunk = await reader.read();
      if (chunk.done) break;
      text += new TextDecoder().decode(chunk.value);
    }
    expect(text).toContain(`id: ${sent.id}\nevent: next\ndata: `);
    abort.abort();
    await waitFor(async () => (await redis.numsub(channel('ugne'))) === 0, 'the channel to be released', 10_000);
  });

  it("graphql-sse's client (Accept: text/event-stream) hears a notification", async () => {
    const client = createSseClient({ url: subscribeUrl, retryAttempts: 0, headers: { authorization: `Bearer ${userToken('ulla')}` } });
    try {
      const events = client.iterate<{ onNotificationReceived: { text: string } }>({ query: ON_NOTIFICATION, variables: { userName: 'ulla' } });
      const first = events.next();
      await waitFor(async () => (await redis.numsub(channel('ulla'))) === 1, 'the SSE subscription', 10_000);
      await sendFull(publishUrl, serviceToken(), { to: 'ulla', text: 'over graphql-sse' });
      expect((await first).value).toMatchObject({ data: { onNotificationReceived: { text: 'over graphql-sse' } } });
      await events.return?.();
    } finally {
      client.dispose();
    }
  });

  it('a subscription with no event stream named (fetch and curl send */*) is told how to subscribe, and subscribes nothing', async () => {
    const response = await postGraphQL(subscribeUrl, ON_NOTIFICATION, { token: userToken('uwe'), variables: { userName: 'uwe' }, headers: { accept: '*/*' } });
    expect(response.status).toBe(400);
    expect(response.body.errors?.[0]?.message).toMatch(/Accept: text\/event-stream/);
    expect(await redis.numsub(channel('uwe'))).toBe(0);
  });
});
