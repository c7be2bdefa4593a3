/**
 * Nothing lost: history in Redis Streams and resume after reconnect, counted — what
 * was published against what arrived.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { channels, createTestBroker, startPublishServer, startSubscribeServer, stopAll, waitFor } from '../support/herald.js';
import { errorCode, postGraphQL, readEvents, send, sendFull } from '../support/http.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import { serviceToken, userToken } from '../support/tokens.js';
import { closeAllClients, collect, wsClient, type Collected } from '../support/ws.js';

const RESUME = `subscription Resume($userName: String!, $since: ID) {
  onNotificationReceived(userName: $userName, since: $since) { id text audience }
}`;

interface Received {
  id: string;
  text: string;
  audience: string;
}

const received = (events: Collected): Received[] =>
  events.results.filter((result) => result.data).map((result) => result.data?.['onNotificationReceived'] as Received);

const texts = (events: Collected): string[] => received(events).map((notification) => notification.text);

let redis: RedisServer;
afterEach(closeAllClients);
afterAll(async () => {
  await closeAllClients();
  await stopAll();
  await redis?.stop();
});

/** Subscribes `user` (optionally resuming) and waits until its user channel is subscribed in Redis. */
async function subscribeAs(wsUrl: string, redisServer: RedisServer, user: string, since?: string, claims: Record<string, unknown> = {}) {
  const events = collect(wsClient(wsUrl, { token: userToken(user, claims) }), RESUME, { userName: user, ...(since ? { since } : {}) });
  await waitFor(async () => (await redisServer.numsub(channels.audienceChannel('acme', 'USER', user))) >= 1, `${user}'s subscription`);
  return events;
}

describe('resume on one Redis', () => {
  let subscribeUrl: string;
  let publishUrl: string;

  beforeAll(async () => {
    redis = await startRedisServer();
    subscribeUrl = (await startSubscribeServer((await createTestBroker(redis.url)).broker)).wsUrl;
    publishUrl = (await startPublishServer((await createTestBroker(redis.url)).broker)).url;
  });

  it('a client disconnected while N notifications were sent receives exactly those N, in order, then live ones', async () => {
    const first = await subscribeAs(subscribeUrl, redis, 'alice');
    expect(await send(publishUrl, serviceToken(), 'alice', 'seen')).toBe(1);
    const cursor = received({ results: [await first.nth(0)] } as Collected)[0]?.id;
    expect(cursor).toMatch(/^[a-f0-9]+_\d+-\d+$/);
    first.unsubscribe();
    await waitFor(async () => (await redis.numsub(channels.audienceChannel('acme', 'USER', 'alice'))) === 0, 'the disconnect');

    const missed = Array.from({ length: 25 }, (_, n) => `missed ${n}`);
    for (const text of missed) expect(await send(publishUrl, serviceToken(), 'alice', text)).toBe(0);

    const resumed = await subscribeAs(subscribeUrl, redis, 'alice', cursor);
    await resumed.nth(missed.length - 1);
    expect(await send(publishUrl, serviceToken(), 'alice', 'live')).toBe(1);
    await resumed.nth(missed.length);
    expect(texts(resumed)).toEqual([...missed, 'live']);
    const ids = received(resumed).map((notification) => notification.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('merges user, store and company history into one ordered sequence under one cursor', async () => {
    const claims = { stores: ['s1'] };
    const first = await subscribeAs(subscribeUrl, redis, 'bob', undefined, claims);
    expect(await send(publishUrl, serviceToken(), 'bob', 'start')).toBe(1);
    const cursor = (await first.nth(0)).data?.['onNotificationReceived'] as Received;
    first.unsubscribe();
    await waitFor(async () => (await redis.numsub(channels.audienceChannel('acme', 'STORE', 's1'))) === 0, 'the disconnect');

    await send(publishUrl, serviceToken(), 'bob', 'u1');
    await send(publishUrl, serviceToken(), 's1', 's1', 'STORE');
    await send(publishUrl, serviceToken(), 'acme', 'c1', 'COMPANY');
    await send(publishUrl, serviceToken(), 'bob', 'u2');
    await send(publishUrl, serviceToken(), 's9', 'other store', 'STORE');

    const resumed = await subscribeAs(subscribeUrl, redis, 'bob', cursor.id, claims);
    await resumed.nth(3);
    expect(received(resumed).map(({ text, audience }) => `${audience}:${text}`)).toEqual(['USER:u1', 'STORE:s1', 'COMPANY:c1', 'USER:u2']);
    // then a live one: had 'other store' leaked, it would stand before this one
    await send(publishUrl, serviceToken(), 'bob', 'live');
    await resumed.nth(4);
    expect(texts(resumed)).toEqual(['u1', 's1', 'c1', 'u2', 'live']);
  });

  it('the switch from history to live has no gap and no duplicate while publishing goes on', async () => {
    for (let round = 0; round < 15; round++) {
      const user = `racer${round}`;
      const sent = Array.from({ length: 40 }, (_, n) => `${n}`);
      const start = await sendFull(publishUrl, serviceToken(), { to: user, text: 'start' });
      // Publish the sequence while the client subscribes with its cursor.
      const publishing = (async () => {
        for (const text of sent) await send(publishUrl, serviceToken(), user, text);
      })();
      const resumed = collect(wsClient(subscribeUrl, { token: userToken(user) }), RESUME, { userName: user, since: start.id });
      await publishing;
      await resumed.nth(sent.length - 1);
      expect(texts(resumed)).toEqual(sent);
      resumed.unsubscribe();
    }
  });

  it('an idempotent retry returns the same id and delivers once', async () => {
    const events = await subscribeAs(subscribeUrl, redis, 'carol');
    const first = await sendFull(publishUrl, serviceToken(), { to: 'carol', text: 'charge', idempotencyKey: 'order-42' });
    const retry = await sendFull(publishUrl, serviceToken(), { to: 'carol', text: 'charge', idempotencyKey: 'order-42' });
    expect(first).toMatchObject({ receivedUsers: 1, duplicate: false });
    expect(retry).toEqual({ id: first.id, receivedUsers: 1, duplicate: true });
    // Another service's key of the same name is its own.
    const other = await sendFull(publishUrl, serviceToken({ sub: 'shipping' }), { to: 'carol', text: 'shipped', idempotencyKey: 'order-42' });
    expect(other.duplicate).toBe(false);
    await events.nth(1);
    expect(texts(events)).toEqual(['charge', 'shipped']);
  });

  it('an idempotency key that is not a valid name is BAD_USER_INPUT', async () => {
    const response = await postGraphQL(
      publishUrl,
      'mutation { sendNotification(to: "carol", text: "x", idempotencyKey: "a b") { id } }',
      { token: serviceToken() },
    );
    expect(errorCode(response)).toBe('BAD_USER_INPUT');
    expect(response.body.errors?.[0]?.message).toContain('idempotencyKey');
  });

  it('a malformed cursor is BAD_USER_INPUT', async () => {
    const events = collect(wsClient(subscribeUrl, { token: userToken('dan') }), RESUME, { userName: 'dan', since: 'yesterday' });
    await events.ended();
    expect(events.results[0]?.errors?.[0]).toMatchObject({ message: 'since is not a notification id', extensions: { code: 'BAD_USER_INPUT' } });
  });

  it('over SSE, events carry the id and Last-Event-ID resumes', async () => {
    const query = encodeURIComponent('subscription { onNotificationReceived(userName: "erin") { text } }');
    const open = (lastEventId?: string, signal?: AbortSignal) =>
      fetch(`${subscribeUrl.replace('ws:', 'http:')}?query=${query}`, {
        headers: {
          Accept: 'text/event-stream',
          Authorization: `Bearer ${userToken('erin')}`,
          ...(lastEventId ? { 'Last-Event-ID': lastEventId } : {}),
        },
        ...(signal ? { signal } : {}),
      });
    const abort = new AbortController();
    const stream = readEvents(await open(undefined, abort.signal));
    await waitFor(async () => (await redis.numsub(channels.audienceChannel('acme', 'USER', 'erin'))) === 1, 'the SSE subscription');
    const sent = await sendFull(publishUrl, serviceToken(), { to: 'erin', text: 'one' });
    const event = await stream.next();
    expect(event).toEqual({ id: sent.id, event: 'next', data: JSON.stringify({ data: { onNotificationReceived: { text: 'one' } } }) });
    abort.abort();
    await waitFor(async () => (await redis.numsub(channels.audienceChannel('acme', 'USER', 'erin'))) === 0, 'the disconnect');

    const two = await sendFull(publishUrl, serviceToken(), { to: 'erin', text: 'two' });
    const three = await sendFull(publishUrl, serviceToken(), { to: 'erin', text: 'three' });
    const resumed = readEvents(await open(event.id));
    expect(await resumed.next()).toMatchObject({ id: two.id, data: JSON.stringify({ data: { onNotificationReceived: { text: 'two' } } }) });
    expect(await resumed.next()).toMatchObject({ id: three.id, data: JSON.stringify({ data: { onNotificationReceived: { text: 'three' } } }) });
  });

  it('notifications(first, after) pages through recent history, newest first', async () => {
    // A tenant of its own, so no other test's company notification is in fay's history.
    const token = userToken('fay', { tenant: 'initech', stores: ['s5'] });
    const sent: string[] = [];
    for (let n = 0; n < 5; n++) {
      sent.push((await sendFull(publishUrl, serviceToken({ tenant: 'initech' }), { to: n % 2 ? 's5' : 'fay', text: `n${n}`, ...(n % 2 ? { audience: 'STORE' as const } : {}) })).id);
    }
    const page = (after?: string) =>
      postGraphQL(subscribeUrl.replace('ws:', 'http:'), 'query Page($after: ID) { notifications(first: 2, after: $after) { edges { cursor node { id text } } pageInfo { hasNextPage endCursor } } }', {
        token,
        variables: after ? { after } : {},
      });
    type Page = { edges: Array<{ cursor: string; node: { id: string; text: string } }>; pageInfo: { hasNextPage: boolean; endCursor: string | null } };
    const pages: Page[] = [];
    let after: string | undefined;
    do {
      const response = await page(after);
      const current = response.body.data?.['notifications'] as Page;
      pages.push(current);
      after = current.pageInfo.hasNextPage ? (current.pageInfo.endCursor ?? undefined) : undefined;
    } while (after);
    expect(pages.flatMap((current) => current.edges.map((edge) => edge.node.text))).toEqual(['n4', 'n3', 'n2', 'n1', 'n0']);
    expect(pages.map((current) => current.edges.length)).toEqual([2, 2, 1]);
    expect(pages.flatMap((current) => current.edges.map((edge) => edge.cursor))).toEqual([...sent].reverse());
  });

  it('notifications refuses a page size over 100', async () => {
    const response = await postGraphQL(subscribeUrl.replace('ws:', 'http:'), '{ notifications(first: 101) { pageInfo { hasNextPage } } }', {
      token: userToken('fay'),
    });
    expect(errorCode(response)).toBe('BAD_USER_INPUT');
  });
});

describe('resume across restarts', () => {
  const servers: RedisServer[] = [];
  afterAll(async () => {
    await closeAllClients();
    await stopAll();
    await Promise.all(servers.map((server) => server.stop()));
  });

  async function deployment(options: Parameters<typeof startRedisServer>[0] = {}, retention?: { maxLength: number; maxAgeMs: number }) {
    const server = await startRedisServer(options);
    servers.push(server);
    const brokerOptions = retention ? { retention } : {};
    const subscribe = await startSubscribeServer((await createTestBroker(server.url, brokerOptions)).broker);
    const publish = await startPublishServer((await createTestBroker(server.url, brokerOptions)).broker);
    return { server, subscribe, publish };
  }

  /** Subscribes, receives one notification and leaves: returns its id as the cursor. */
  async function cursorOf(wsUrl: string, server: RedisServer, publishUrl: string, user: string): Promise<string> {
    const events = await subscribeAs(wsUrl, server, user);
    await send(publishUrl, serviceToken(), user, 'seen');
    const id = ((await events.nth(0)).data?.['onNotificationReceived'] as Received).id;
    events.unsubscribe();
    await waitFor(async () => (await server.numsub(channels.audienceChannel('acme', 'USER', user))) === 0, 'the disconnect');
    return id;
  }

  it('a subscribe server killed and restarted loses nothing for a client that resumes', async () => {
    const { server, subscribe, publish } = await deployment();
    const cursor = await cursorOf(subscribe.wsUrl, server, publish.url, 'gus');
    await subscribe.stop();
    const missed = Array.from({ length: 10 }, (_, n) => `while down ${n}`);
    for (const text of missed) await send(publish.url, serviceToken(), 'gus', text);

    const restarted = await startSubscribeServer((await createTestBroker(server.url)).broker);
    const resumed = await subscribeAs(restarted.wsUrl, server, 'gus', cursor);
    await resumed.nth(missed.length - 1);
    expect(texts(resumed)).toEqual(missed);
  });

  it('Redis restarted with AOF loses nothing', async () => {
    const { server, subscribe, publish } = await deployment({ appendOnly: true });
    const cursor = await cursorOf(subscribe.wsUrl, server, publish.url, 'hal');
    const missed = Array.from({ length: 10 }, (_, n) => `before restart ${n}`);
    for (const text of missed) await send(publish.url, serviceToken(), 'hal', text);

    await server.kill();
    await server.restart();
    await waitFor(async () => (await fetch(publish.url.replace('/graphql', '/readyz'))).ok, 'the publish server to reconnect', 10_000);
    await waitFor(async () => (await fetch(subscribe.httpUrl.replace('/graphql', '/readyz'))).ok, 'the subscribe server to reconnect', 10_000);
    await send(publish.url, serviceToken(), 'hal', 'after restart');

    const resumed = await subscribeAs(subscribe.wsUrl, server, 'hal', cursor);
    await resumed.nth(missed.length);
    expect(texts(resumed)).toEqual([...missed, 'after restart']);
  });

  it('Redis restarted empty yields HISTORY_GAP, then live notifications', async () => {
    const { server, subscribe, publish } = await deployment();
    const cursor = await cursorOf(subscribe.wsUrl, server, publish.url, 'ivy');
    await send(publish.url, serviceToken(), 'ivy', 'lost with Redis');

    await server.kill();
    await server.restart();
    await waitFor(async () => (await fetch(subscribe.httpUrl.replace('/graphql', '/readyz'))).ok, 'the subscribe server to reconnect', 10_000);
    await waitFor(async () => (await fetch(publish.url.replace('/graphql', '/readyz'))).ok, 'the publish server to reconnect', 10_000);
    await send(publish.url, serviceToken(), 'ivy', 'new history'); // a new epoch begins

    const resumed = await subscribeAs(subscribe.wsUrl, server, 'ivy', cursor);
    const gap = await resumed.nth(0);
    expect(gap.data).toBeNull();
    expect(gap.errors?.[0]).toMatchObject({ extensions: { code: 'HISTORY_GAP' }, message: expect.stringContaining('history') });
    await send(publish.url, serviceToken(), 'ivy', 'live');
    await resumed.nth(1);
    expect(texts(resumed)).toEqual(['live']);
    expect(resumed.completed).toBe(false);
  });

  it('a cursor whose successors were trimmed yields HISTORY_GAP', async () => {
    const { server, subscribe, publish } = await deployment({}, { maxLength: 3, maxAgeMs: 3_600_000 });
    const cursor = await cursorOf(subscribe.wsUrl, server, publish.url, 'jan');
    for (let n = 0; n < 5; n++) await send(publish.url, serviceToken(), 'jan', `n${n}`);

    const resumed = await subscribeAs(subscribe.wsUrl, server, 'jan', cursor);
    const gap = await resumed.nth(0);
    expect(gap.errors?.[0]).toMatchObject({ extensions: { code: 'HISTORY_GAP' }, message: expect.stringContaining('trimmed') });
    resumed.unsubscribe();
    await waitFor(async () => (await server.numsub(channels.audienceChannel('acme', 'USER', 'jan'))) === 0, 'the disconnect');

    // A cursor still inside what is kept resumes without a gap.
    const kept = await cursorOf(subscribe.wsUrl, server, publish.url, 'jan');
    await send(publish.url, serviceToken(), 'jan', 'after kept');
    const again = await subscribeAs(subscribe.wsUrl, server, 'jan', kept);
    await again.nth(0);
    expect(again.results[0]?.errors).toBeUndefined();
    expect(texts(again)).toEqual(['after kept']);
  });
});
