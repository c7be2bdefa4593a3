/**
 * Preferences end to end, against real Redis and real graphql-ws clients: two subscribe
 * servers (a user's two devices may be on two servers) and a publish server, started as
 * `main.ts` starts them. A category a user turned off `IN_APP` reaches none of that
 * user's live subscriptions — sent to the user, a store, the company or a topic — and
 * still reaches everyone else's; the inbox list hides it; a change made on one device
 * applies on the user's other connection at once; `critical` goes through.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readConfig } from '../../src/config/index.js';
import { startHerald, type RunningHerald } from '../../src/servers/herald.js';
import { errorCode, postGraphQL } from '../support/http.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import { serviceToken, TEST_SECRET, userToken } from '../support/tokens.js';
import { closeAllClients, collect, wsClient, type Collected } from '../support/ws.js';
import { channels, waitFor } from '../support/herald.js';

const SUBSCRIBE = `subscription On($userName: String!) { onNotificationReceived(userName: $userName) { text category critical } }`;
const SEND = `mutation Send($to: String!, $text: String!, $audience: Audience, $category: String, $critical: Boolean) {
  sendNotification(to: $to, text: $text, audience: $audience, category: $category, critical: $critical, push: NEVER) { id }
}`;
const SET = `mutation Set($category: String!, $channel: Channel!, $enabled: Boolean!, $userName: String) {
  setPreference(category: $category, channel: $channel, enabled: $enabled, userName: $userName) {
    categories { category channels { channel enabled chosen } }
  }
}`;
const FOLLOW = 'mutation Follow($topic: String!) { follow(topic: $topic) }';

let redis: RedisServer;
const started: RunningHerald[] = [];
let deviceA: string;
let deviceB: string;
let publishUrl: string;

afterAll(async () => {
  await closeAllClients();
  await Promise.all(started.map((herald) => herald.stop()));
  await redis?.stop();
});

beforeAll(async () => {
  redis = await startRedisServer();
  const config = readConfig({
    REDIS_URL: redis.url,
    REDIS_COMMAND_TIMEOUT_MS: '1000',
    JWT_SECRET: TEST_SECRET,
    HOST: '127.0.0.1',
    SUBSCRIBE_PORT: '0',
    PUBLISH_PORT: '0',
    GRPC_PORT: '0',
    PUBLISH_GRPC_PORT: '0',
  });
  const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
  const [a, b, publish] = await Promise.all([startHerald(config, 'subscribe', quiet), startHerald(config, 'subscribe', quiet), startHerald(config, 'publish', quiet)]);
  started.push(a, b, publish);
  deviceA = `http://127.0.0.1:${a.subscribePort}/graphql`;
  deviceB = `http://127.0.0.1:${b.subscribePort}/graphql`;
  publishUrl = `http://127.0.0.1:${publish.publishPort}/graphql`;
});

const wsOf = (url: string): string => url.replace(/^http/, 'ws');

async function ok(url: string, query: string, token: string, variables: Record<string, unknown>): Promise<Record<string, unknown>> {
  const response = await postGraphQL(url, query, { token, variables });
  if (response.body.errors !== undefined) throw new Error(JSON.stringify(response.body.errors));
  return response.body.data ?? {};
}

const sendAs = (variables: { to: string; text: string; audience?: string; category?: string; critical?: boolean }) => ok(publishUrl, SEND, serviceToken(), variables);

/** The texts a subscription got, once its `n`th result (0-based) arrived. */
async function textsUpTo(collected: Collected, n: number): Promise<string[]> {
  await collected.nth(n);
  return collected.results.map((result) => (result.data?.['onNotificationReceived'] as { text: string }).text);
}

async function subscribed(user: string, count: number): Promise<void> {
  await waitFor(async () => (await redis.numsub(channels.audienceChannel('acme', 'USER', user))) >= count, `${count} subscriptions of ${user}`);
}

describe('preferences', () => {
  it('a category off IN_APP reaches no live subscription of the user, by USER, STORE, COMPANY or TOPIC, and reaches another user’s', async () => {
    const stores = ['s1'];
    await ok(deviceA, FOLLOW, userToken('ann', { stores }), { topic: 'deals' });
    await ok(deviceA, FOLLOW, userToken('bob', { stores }), { topic: 'deals' });
    const set = await ok(deviceA, SET, userToken('ann', { stores }), { category: 'promo', channel: 'IN_APP', enabled: false });
    expect(set['setPreference']).toEqual({
      categories: [
        {
          category: 'promo',
          channels: [
            { channel: 'IN_APP', enabled: false, chosen: true },
            { channel: 'FCM', enabled: true, chosen: false },
            { channel: 'WEB_PUSH', enabled: true, chosen: false },
            { channel: 'WEBHOOK', enabled: true, chosen: false },
            { channel: 'APNS', enabled: true, chosen: false },
          ],
        },
      ],
    });
    const ann = collect(wsClient(wsOf(deviceB), { token: userToken('ann', { stores }) }), SUBSCRIBE, { userName: 'ann' });
    const bob = collect(wsClient(wsOf(deviceB), { token: userToken('bob', { stores }) }), SUBSCRIBE, { userName: 'bob' });
    await subscribed('ann', 1);
    await subscribed('bob', 1);
    await waitFor(async () => (await redis.numsub(channels.audienceChannel('acme', 'TOPIC', 'deals'))) >= 1, 'the topic');

    await sendAs({ to: 'ann', text: 'user ann', category: 'promo' });
    await sendAs({ to: 'bob', text: 'user bob', category: 'promo' });
    await sendAs({ to: 's1', audience: 'STORE', text: 'store', category: 'promo' });
    await sendAs({ to: 'acme', audience: 'COMPANY', text: 'company', category: 'promo' });
    await sendAs({ to: 'deals', audience: 'TOPIC', text: 'topic', category: 'promo' });
    await sendAs({ to: 'ann', text: 'critical', category: 'promo', critical: true });
    await sendAs({ to: 'ann', text: 'other category', category: 'billing' });
    // Sent last to both: once it arrives, everything before it has been decided.
    await sendAs({ to: 'acme', audience: 'COMPANY', text: 'last' });

    expect(await textsUpTo(bob, 4)).toEqual(['user bob', 'store', 'company', 'topic', 'last']);
    expect(await textsUpTo(ann, 2)).toEqual(['critical', 'other category', 'last']);
    expect(ann.results[0]?.data).toEqual({ onNotificationReceived: { text: 'critical', category: 'promo', critical: true } });
    expect(ann.results[2]?.data).toEqual({ onNotificationReceived: { text: 'last', category: null, critical: false } });

    // The inbox list (user, stores and company: topics are not listed) hides it too; another user's does not.
    const listed = async (user: string) =>
      ((await ok(deviceA, '{ notifications(first: 20) { edges { node { text } } } }', userToken(user, { stores }), {}))['notifications'] as { edges: Array<{ node: { text: string } }> }).edges.map(
        (edge) => edge.node.text,
      );
    expect(await listed('ann')).toEqual(['last', 'other category', 'critical']);
    expect(await listed('bob')).toEqual(['last', 'company', 'store', 'user bob']);
    // A page of only hidden ones still pages on: one a page, ann's oldest three are hidden promos.
    const page = async (after: string | null) =>
      (await ok(deviceA, 'query Page($after: ID) { notifications(first: 1, after: $after) { edges { node { text } } pageInfo { hasNextPage endCursor } } }', userToken('ann', { stores }), { after }))[
        'notifications'
      ] as { edges: Array<{ node: { text: string } }>; pageInfo: { hasNextPage: boolean; endCursor: string | null } };
    const texts: string[] = [];
    let after: string | null = null;
    for (let pages = 0; pages < 10; pages++) {
      const { edges, pageInfo } = await page(after);
      texts.push(...edges.map((edge) => edge.node.text));
      if (!pageInfo.hasNextPage) break;
      after = pageInfo.endCursor;
    }
    expect(texts).toEqual(['last', 'other category', 'critical']);
  });

  it('a change on one device applies on the user’s connection on another server before anything sent after it is answered', async () => {
    const user = 'cleo';
    const onA = collect(wsClient(wsOf(deviceA), { token: userToken(user) }), SUBSCRIBE, { userName: user });
    const onB = collect(wsClient(wsOf(deviceB), { token: userToken(user) }), SUBSCRIBE, { userName: user });
    await subscribed(user, 2);

    // Stronger than "within 1 s", and free of the machine's speed: the change is told
    // before the mutation answers, so a notification sent after the answer already meets it
    // on both servers (Redis delivers one node's messages in the order it took them).
    await ok(deviceA, SET, userToken(user), { category: 'news', channel: 'IN_APP', enabled: false });
    await sendAs({ to: user, text: 'news 1', category: 'news' });
    await sendAs({ to: user, text: 'marker 1' });
    expect(await textsUpTo(onA, 0)).toEqual(['marker 1']);
    expect(await textsUpTo(onB, 0)).toEqual(['marker 1']);

    // Back on, from the other device.
    await ok(deviceB, SET, userToken(user), { category: 'news', channel: 'IN_APP', enabled: true });
    await sendAs({ to: user, text: 'news 2', category: 'news' });
    expect(await textsUpTo(onA, 1)).toEqual(['marker 1', 'news 2']);
    expect(await textsUpTo(onB, 1)).toEqual(['marker 1', 'news 2']);
  });

  it('refuses bad arguments naming them, another user’s preferences without the publish scope, and the wrong server', async () => {
    const bad = await postGraphQL(deviceA, SET, { token: userToken('dan'), variables: { category: 'no space', channel: 'FCM', enabled: false } });
    expect(errorCode(bad)).toBe('BAD_USER_INPUT');
    expect(bad.body.errors?.[0]?.message).toMatch(/^category "no space"/);
    const quiet = await postGraphQL(deviceA, 'mutation { setQuietHours(start: "22:00", end: "07:00", timeZone: "Nowhere/Land") { quietHours { start } } }', { token: userToken('dan') });
    expect(errorCode(quiet)).toBe('BAD_USER_INPUT');
    expect(quiet.body.errors?.[0]?.message).toMatch(/^timeZone/);
    const other = await postGraphQL(deviceA, SET, { token: userToken('dan'), variables: { category: 'promo', channel: 'FCM', enabled: false, userName: 'eve' } });
    expect(errorCode(other)).toBe('FORBIDDEN');
    const forUser = await postGraphQL(deviceA, SET, { token: serviceToken(), variables: { category: 'promo', channel: 'FCM', enabled: false, userName: 'eve' } });
    expect(forUser.body.errors).toBeUndefined();
    const elsewhere = await postGraphQL(publishUrl, SET, { token: userToken('dan'), variables: { category: 'promo', channel: 'FCM', enabled: false } });
    expect(errorCode(elsewhere)).toBe('WRONG_SERVER');
    const queryElsewhere = await postGraphQL(publishUrl, '{ preferences { categories { category } } }', { token: userToken('dan') });
    expect(errorCode(queryElsewhere)).toBe('WRONG_SERVER');
    const defaultElsewhere = await postGraphQL(deviceA, 'mutation { setDefaultPreference(category: "x", channel: FCM, enabled: false) { category } }', { token: serviceToken() });
    expect(errorCode(defaultElsewhere)).toBe('WRONG_SERVER');
    const badCategory = await postGraphQL(publishUrl, SEND, { token: serviceToken(), variables: { to: 'dan', text: 't', category: '' } });
    expect(errorCode(badCategory)).toBe('BAD_USER_INPUT');
  });

  it('a tenant default off IN_APP applies to subscriptions opened after it, until the user chooses', async () => {
    const setDefault = await postGraphQL(publishUrl, 'mutation { setDefaultPreference(category: "digest", channel: IN_APP, enabled: false) { category } }', { token: serviceToken() });
    expect(setDefault.body.errors).toBeUndefined();
    const refused = await postGraphQL(publishUrl, 'mutation { setDefaultPreference(category: "digest", channel: IN_APP, enabled: false) { category } }', { token: userToken('fay') });
    expect(errorCode(refused)).toBe('FORBIDDEN');
    const fay = collect(wsClient(wsOf(deviceB), { token: userToken('fay') }), SUBSCRIBE, { userName: 'fay' });
    await subscribed('fay', 1);
    await sendAs({ to: 'fay', text: 'digest 1', category: 'digest' });
    await sendAs({ to: 'fay', text: 'marker' });
    expect(await textsUpTo(fay, 0)).toEqual(['marker']);
    await ok(deviceA, SET, userToken('fay'), { category: 'digest', channel: 'IN_APP', enabled: true });
    await sendAs({ to: 'fay', text: 'digest 2', category: 'digest' });
    expect(await textsUpTo(fay, 1)).toEqual(['marker', 'digest 2']);
  });
});

describe('the unread count with a category muted in the app', () => {
  const INBOX = 'query { notifications(first: 50) { edges { node { text } } readUpTo unreadCount } }';
  const MARK = 'mutation Mark($userName: String!, $upTo: ID!) { markNotificationsRead(userName: $userName, upTo: $upTo) { unreadCount } }';
  const inbox = async (token: string) =>
    (await ok(deviceA, INBOX, token, {}))['notifications'] as { edges: Array<{ node: { text: string } }>; readUpTo: string | null; unreadCount: number };

  // A tenant of its own: the tests above broadcast to the whole of acme.
  const send = (variables: { text: string; category?: string; critical?: boolean }) => ok(publishUrl, SEND, serviceToken({ tenant: 'badgeco' }), { to: 'badge', ...variables });

  it('counts what the list shows: a muted category neither listed nor counted, a critical one of it both', async () => {
    const token = userToken('badge', { tenant: 'badgeco' });
    await ok(deviceA, SET, token, { category: 'promo', channel: 'IN_APP', enabled: false });
    const first = (await send({ text: 'welcome' }))['sendNotification'] as { id: string };
    await send({ text: 'sale', category: 'promo' });
    await send({ text: 'invoice', category: 'billing' });
    await send({ text: 'promo outage', category: 'promo', critical: true });
    const listed = await inbox(token);
    expect(listed.edges.map((edge) => edge.node.text)).toEqual(['promo outage', 'invoice', 'welcome']);
    expect(listed.readUpTo).toBeNull();
    expect(listed.unreadCount).toBe(3);

    // more hidden ones than a page of the count, then one shown
    for (let n = 0; n < 120; n++) await send({ text: `more sales ${n}`, category: 'promo' });
    await send({ text: 'late' });
    expect((await inbox(token)).unreadCount).toBe(4);

    // read up to the first: what is newer and shown is unread, through pages of hidden ones
    const marked = (await ok(deviceA, MARK, token, { userName: 'badge', upTo: first.id }))['markNotificationsRead'] as { unreadCount: number };
    expect(marked.unreadCount).toBe(3);
    expect((await inbox(token)).unreadCount).toBe(3);

    // the same history, the category on again: every entry counts, up to the cap
    await ok(deviceA, SET, token, { category: 'promo', channel: 'IN_APP', enabled: true });
    expect((await inbox(token)).unreadCount).toBe(100);
  });
});
