/**
 * Read state end to end: `markNotificationsRead` on the subscribe server, the read flags
 * and unread count of `notifications`, and the change reaching the user's other devices
 * live through Redis — with two subscribe servers on one Redis, as two devices may be on
 * two servers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/broker/types.js';
import { channels, createTestBroker, startPublishServer, startSubscribeServer, stopAll, waitFor } from '../support/herald.js';
import { errorCode, postGraphQL, send, sendFull } from '../support/http.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import { serviceToken, userToken } from '../support/tokens.js';
import { closeAllClients, collect, wsClient } from '../support/ws.js';

const INBOX = `subscription Inbox($userName: String!) {
  onInboxEvent(userName: $userName) {
    __typename
    ... on Notification { id text }
    ... on ReadStateChange { readUpTo }
  }
}`;

const MARK_READ = `mutation Mark($userName: String!, $upTo: ID!) {
  markNotificationsRead(userName: $userName, upTo: $upTo) { readUpTo unreadCount }
}`;

const LIST = `{ notifications(first: 10) { unreadCount readUpTo edges { read node { id text } } } }`;

interface Listed {
  unreadCount: number;
  readUpTo: string | null;
  edges: Array<{ read: boolean; node: { id: string; text: string } }>;
}

let redis: RedisServer;
let deviceA: string;
let deviceB: string;
let publishUrl: string;
afterAll(async () => {
  await closeAllClients();
  await stopAll();
  await redis?.stop();
});
beforeAll(async () => {
  redis = await startRedisServer();
  deviceA = (await startSubscribeServer((await createTestBroker(redis.url)).broker)).wsUrl;
  deviceB = (await startSubscribeServer((await createTestBroker(redis.url)).broker)).wsUrl;
  publishUrl = (await startPublishServer((await createTestBroker(redis.url)).broker)).url;
});

const httpOf = (wsUrl: string): string => wsUrl.replace(/^ws/, 'http');

async function list(wsUrl: string, user: string): Promise<Listed> {
  const response = await postGraphQL(httpOf(wsUrl), LIST, { token: userToken(user) });
  expect(response.body.errors).toBeUndefined();
  return response.body.data?.['notifications'] as Listed;
}

describe('read state', () => {
  it('marks read on one device; the other device hears it live; the list and count follow; the seed subscription hears only notifications', async () => {
    const user = 'reader1';
    const inboxB = collect(wsClient(deviceB, { token: userToken(user) }), INBOX, { userName: user });
    const seed = collect(wsClient(deviceB, { token: userToken(user) }), `subscription { onNotificationReceived(userName: "${user}") { text timestamp } }`);
    await waitFor(async () => (await redis.numsub(channels.audienceChannel('acme', 'USER', user))) >= 1, 'the subscriptions');

    const first = await sendFull(publishUrl, serviceToken(), { to: user, text: 'first' });
    const second = await sendFull(publishUrl, serviceToken(), { to: user, text: 'second' });
    await inboxB.nth(1);
    expect(await list(deviceA, user)).toMatchObject({ unreadCount: 2, readUpTo: null });

    const marked = await postGraphQL(httpOf(deviceA), MARK_READ, { token: userToken(user), variables: { userName: user, upTo: first.id } });
    expect(marked.body).toEqual({ data: { markNotificationsRead: { readUpTo: first.id, unreadCount: 1 } } });
    expect((await inboxB.nth(2)).data).toEqual({ onInboxEvent: { __typename: 'ReadStateChange', readUpTo: first.id } });

    const listed = await list(deviceB, user);
    expect(listed.unreadCount).toBe(1);
    expect(listed.readUpTo).toBe(first.id);
    expect(listed.edges.map(({ read, node }) => [node.text, read])).toEqual([
      ['second', false],
      ['first', true],
    ]);

    // A sentinel after the read change: the seed subscription got the two notifications
    // and the sentinel, and nothing for the read change.
    await send(publishUrl, serviceToken(), user, 'sentinel');
    await seed.nth(2);
    expect(seed.results.map((result) => result.data)).toEqual(
      ['first', 'second', 'sentinel'].map((text) => ({ onNotificationReceived: { text, timestamp: expect.any(Number) } })),
    );
    expect(second.id).toBeDefined();
  });

  it('marking another user read is FORBIDDEN and changes nothing', async () => {
    const sent = await sendFull(publishUrl, serviceToken(), { to: 'victim', text: 'private' });
    const response = await postGraphQL(httpOf(deviceA), MARK_READ, { token: userToken('mallory'), variables: { userName: 'victim', upTo: sent.id } });
    expect(errorCode(response)).toBe('FORBIDDEN');
    expect(await redis.client().exists(channels.readStateKey('acme', 'victim'))).toBe(0);
    expect((await list(deviceA, 'victim')).unreadCount).toBe(1);
  });

  it('is the subscribe server\'s: the publish server refuses it as WRONG_SERVER, and the subscribe server refuses sendNotification', async () => {
    const onPublish = await postGraphQL(publishUrl, MARK_READ, { token: userToken('u'), variables: { userName: 'u', upTo: 'e_1-1' } });
    expect(errorCode(onPublish)).toBe('WRONG_SERVER');
    const onSubscribe = await postGraphQL(httpOf(deviceA), 'mutation { sendNotification(to: "u", text: "x") { id } }', { token: serviceToken() });
    expect(errorCode(onSubscribe)).toBe('WRONG_SERVER');
  });

  it('takes a position in the future as the newest notification, so later ones are unread; refuses one of another history', async () => {
    const user = 'reader3';
    const mark = (upTo: string) => postGraphQL(httpOf(deviceA), MARK_READ, { token: userToken(user), variables: { userName: user, upTo } });
    const sent = await sendFull(publishUrl, serviceToken(), { to: user, text: 'now' });
    const epoch = sent.id.split('_')[0] ?? '';

    const future = await mark(`${epoch}_9999999999999-0`);
    expect(future.body).toEqual({ data: { markNotificationsRead: { readUpTo: sent.id, unreadCount: 0 } } });
    await send(publishUrl, serviceToken(), user, 'later');
    expect(await list(deviceB, user)).toMatchObject({
      unreadCount: 1,
      readUpTo: sent.id,
      edges: [
        { read: false, node: { text: 'later' } },
        { read: true, node: { text: 'now' } },
      ],
    });

    const foreign = await mark('feedface_1-1');
    expect(errorCode(foreign)).toBe('BAD_USER_INPUT');
    expect(foreign.body.errors?.[0]?.message).toContain('"feedface"');
    expect(await redis.client().get(channels.readStateKey('acme', user))).toBe(sent.id);
  });

  it('keeps the read position across a restart of the subscribe server', async () => {
    const user = 'reader2';
    const sent = await sendFull(publishUrl, serviceToken(), { to: user, text: 'kept' });
    await postGraphQL(httpOf(deviceA), MARK_READ, { token: userToken(user), variables: { userName: user, upTo: sent.id } });
    const restarted = await startSubscribeServer((await createTestBroker(redis.url)).broker);
    expect(await list(restarted.wsUrl, user)).toMatchObject({ unreadCount: 0, readUpTo: sent.id, edges: [{ read: true }] });
  });

  it('counts unread as of the page it lists: a notification stored between the page and the count is in neither, so a client adding it live counts it once', async () => {
    const user = 'reader-race';
    const first = await sendFull(publishUrl, serviceToken(), { to: user, text: 'before the list' });
    const { broker } = await createTestBroker(redis.url);
    // The list's page is read, then a notification is stored, then the count is read:
    // the interleaving two devices of one user meet when one lists while another publishes.
    let between: Promise<{ id: string }> | undefined;
    const racing: Broker = {
      ...broker,
      readPage: async (request) => {
        const page = await broker.readPage(request);
        if (between === undefined) {
          between = sendFull(publishUrl, serviceToken(), { to: user, text: 'between the page and the count' });
          await between;
        }
        return page;
      },
    };
    const listed = await list((await startSubscribeServer(racing)).wsUrl, user);
    expect(between, 'the notification stored between the two reads').toBeDefined();
    expect(listed.edges.map((edge) => edge.node.id)).toEqual([first.id]);
    expect(listed.unreadCount).toBe(1);
    // Listed again, both are there and counted.
    expect(await list(deviceA, user)).toMatchObject({ unreadCount: 2, edges: [{ node: { id: (await between)?.id } }, { node: { id: first.id } }] });
  });
});
