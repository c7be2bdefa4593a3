/**
 * The push worker wired into Herald: Herald started as `main.ts` starts it
 * (`startHerald` in the all-in-one mode, on a real Redis, with its own push worker), a
 * user's devices and topics over GraphQL on the subscribe server, notifications sent
 * through the publish server with a push policy, and a local webhook receiver whose
 * deliveries are verified with the `standardwebhooks` package.
 *
 * The worker sends for real (`dryRun: false`) without `NODE_ENV=production`, because
 * production refuses `http://` webhook URLs; the receiver listens on 127.0.0.1, which
 * `PUSH_ALLOWED_NETWORKS` allows here.
 */
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readConfig } from '../../../src/config/index.js';
import { startHerald, type RunningHerald } from '../../../src/servers/herald.js';
import { closeGrpcClients, grpcSend, publisherClient } from '../../support/grpc.js';
import { errorCode, postGraphQL, type GraphQLResponse } from '../../support/http.js';
import { quietLogger } from '../../support/herald.js';
import { LOCAL_NETWORKS, startHttpRecorder, type HttpRecorder, type RecordedRequest } from '../../support/push-servers.js';
import { eventually } from '../../support/push-worker.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';
import { serviceToken, TEST_SECRET, userToken } from '../../support/tokens.js';
import { closeAllClients, collect, wsClient } from '../../support/ws.js';

const WEBHOOK_SECRET = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
/** Short, so a test waits little; long enough that a live delivery's mark lands first. */
const OFFLINE_GRACE_MS = 300;

let redis: RedisServer;
let hooks: HttpRecorder;
let herald: RunningHerald;
let subscribeUrl: string;
let wsUrl: string;
let publishUrl: string;
const service = serviceToken({ tenant: 'acme' });

beforeAll(async () => {
  [redis, hooks] = await Promise.all([startRedisServer(), startHttpRecorder()]);
  hooks.answer = () => ({ status: 204 });
  const config = readConfig({
    REDIS_URL: redis.url,
    JWT_SECRET: TEST_SECRET,
    HOST: '127.0.0.1',
    SUBSCRIBE_PORT: '0',
    PUBLISH_PORT: '0',
    GRPC_PORT: '0',
    PUBLISH_GRPC_PORT: '0',
    PUSH_WEBHOOK_SECRET: WEBHOOK_SECRET,
    PUSH_OFFLINE_GRACE_MS: String(OFFLINE_GRACE_MS),
    PUSH_ALLOWED_NETWORKS: LOCAL_NETWORKS, // the receiver listens on 127.0.0.1
  });
  herald = await startHerald({ ...config, push: { ...config.push, dryRun: false } }, 'all', quietLogger);
  subscribeUrl = `http://127.0.0.1:${herald.subscribePort}/graphql`;
  wsUrl = `ws://127.0.0.1:${herald.subscribePort}/graphql`;
  publishUrl = `http://127.0.0.1:${herald.publishPort}/graphql`;
});
afterAll(async () => {
  closeGrpcClients();
  await closeAllClients();
  await herald?.stop();
  await Promise.all([hooks?.close(), redis?.stop()]);
});

const REGISTER = `mutation Register($device: DeviceInput!, $userName: String) {
  registerDevice(device: $device, userName: $userName) { id kind url registeredAt }
}`;
const SEND = `mutation Send($to: String!, $text: String!, $audience: Audience, $push: PushPolicy) {
  sendNotification(to: $to, text: $text, audience: $audience, push: $push) { id }
}`;

/** Registers a webhook at the receiver's `/<path>` for `user`, with the user's own token. */
async function registerHook(user: string, path: string): Promise<string> {
  const response = await postGraphQL(subscribeUrl, REGISTER, { token: userToken(user, { tenant: 'acme' }), variables: { device: { kind: 'WEBHOOK', url: `${hooks.url}/${path}` } } });
  expect(response.body.errors).toBeUndefined();
  return (response.body.data?.['registerDevice'] as { id: string }).id;
}

async function publish(variables: { to: string; text: string; audience?: string; push?: string }): Promise<string> {
  const response = await postGraphQL(publishUrl, SEND, { token: service, variables });
  expect(response.body.errors).toBeUndefined();
  return (response.body.data?.['sendNotification'] as { id: string }).id;
}

const to = (path: string): RecordedRequest[] => hooks.requests.filter((request) => request.path === `/${path}`);

function verified(request: RecordedRequest): Record<string, unknown> {
  const headers = Object.fromEntries(Object.entries(request.headers).map(([name, value]) => [name, String(value)]));
  return new Webhook(WEBHOOK_SECRET).verify(request.body.toString('utf8'), headers) as Record<string, unknown>;
}

/** Resolves once the worker has finished every entry queued so far (they are deleted once acknowledged). */
async function workerIdle(): Promise<void> {
  const client = redis.client();
  try {
    await eventually(async () => (await client.xlen('herald:push:stream')) === 0, 'the push stream to drain');
  } finally {
    client.disconnect();
  }
}

describe('devices over GraphQL', () => {
  it('a webhook registered by its user receives a signed delivery of an ALWAYS notification', async () => {
    const deviceId = await registerHook('ann', 'ann');
    const listed = await postGraphQL(subscribeUrl, '{ devices { id kind url } }', { token: userToken('ann', { tenant: 'acme' }) });
    expect(listed.body.data?.['devices']).toEqual([{ id: deviceId, kind: 'WEBHOOK', url: `${hooks.url}/ann` }]);

    const id = await publish({ to: 'ann', text: 'your order shipped', push: 'ALWAYS' });
    await eventually(() => to('ann').length > 0, "ann's webhook delivery");
    const [delivery] = to('ann');
    expect(delivery && verified(delivery)).toMatchObject({ id, text: 'your order shipped', audience: 'USER', user: 'ann', tenant: 'acme', sender: 'billing' });
  });

  it('NEVER queues no push', async () => {
    await registerHook('nina', 'nina');
    await publish({ to: 'nina', text: 'live only', push: 'NEVER' });
    const last = await publish({ to: 'nina', text: 'and this one pushed', push: 'ALWAYS' });
    // Entries are handled in order: once the second is delivered, the first would have been too.
    await eventually(() => to('nina').length > 0, "nina's webhook delivery");
    await workerIdle();
    expect(to('nina').map((request) => verified(request)['id'])).toEqual([last]);
  });

  it('a bad URL is BAD_USER_INPUT naming the field', async () => {
    const response = await postGraphQL(subscribeUrl, REGISTER, { token: userToken('ann', { tenant: 'acme' }), variables: { device: { kind: 'WEBHOOK', url: 'ftp://example.com/hook' } } });
    expect(errorCode(response)).toBe('BAD_USER_INPUT');
    expect(response.body.errors?.[0]?.message).toContain('device.url');
  });

  it("registering for another user is FORBIDDEN, unless a service of the user's tenant does it", async () => {
    const device = { kind: 'WEBHOOK', url: `${hooks.url}/other` };
    const forbidden = await postGraphQL(subscribeUrl, REGISTER, { token: userToken('mallory', { tenant: 'acme' }), variables: { device, userName: 'ann' } });
    expect(errorCode(forbidden)).toBe('FORBIDDEN');

    const byService = await postGraphQL(subscribeUrl, REGISTER, { token: service, variables: { device, userName: 'olga' } });
    expect(byService.body.errors).toBeUndefined();
    const olgas = await postGraphQL(subscribeUrl, '{ devices { url } }', { token: userToken('olga', { tenant: 'acme' }) });
    expect(olgas.body.data?.['devices']).toEqual([{ url: `${hooks.url}/other` }]);
    // the same service, in its own tenant only: a user of another tenant is not reached
    const elsewhere = await postGraphQL(subscribeUrl, '{ devices { url } }', { token: userToken('olga', { tenant: 'globex' }) });
    expect(elsewhere.body.data?.['devices']).toEqual([]);
  });

  it('removeDevice removes it, and each server answers only its own mutations', async () => {
    const id = await registerHook('rita', 'rita');
    const token = userToken('rita', { tenant: 'acme' });
    const removed = await postGraphQL(subscribeUrl, 'mutation Remove($id: ID!) { removeDevice(id: $id) }', { token, variables: { id } });
    expect(removed.body.data?.['removeDevice']).toBe(true);
    expect((await postGraphQL(subscribeUrl, '{ devices { id } }', { token })).body.data?.['devices']).toEqual([]);

    const sendHere = await postGraphQL(subscribeUrl, SEND, { token: service, variables: { to: 'rita', text: 'x' } });
    expect(errorCode(sendHere)).toBe('WRONG_SERVER');
    const registerThere = await postGraphQL(publishUrl, REGISTER, { token, variables: { device: { kind: 'WEBHOOK', url: `${hooks.url}/rita` } } });
    expect(errorCode(registerThere)).toBe('WRONG_SERVER');
  });
});

describe('WHEN_OFFLINE', () => {
  it('pushes to a user who is not connected, and not to one who received it live over WebSocket', async () => {
    await registerHook('bob', 'bob');
    await registerHook('carol', 'carol');
    const live = collect(wsClient(wsUrl, { token: userToken('bob', { tenant: 'acme' }) }), 'subscription { onNotificationReceived(userName: "bob") { id text } }');
    // the subscription is open once a notification sent now reaches it
    await eventually(async () => {
      await publish({ to: 'bob', text: 'ping', push: 'NEVER' });
      return live.results.length > 0;
    }, "bob's subscription to open");

    const forBob = await publish({ to: 'bob', text: 'seen live' });
    const forCarol = await publish({ to: 'carol', text: 'pushed' });
    await eventually(() => live.results.some((result) => (result.data?.['onNotificationReceived'] as { id: string }).id === forBob), 'bob to receive it live');
    await eventually(() => to('carol').length > 0, "carol's webhook delivery");
    await workerIdle();
    expect(to('carol').map((request) => verified(request)['id'])).toEqual([forCarol]);
    expect(to('bob')).toEqual([]);
    expect(herald.pushWorker?.counters.skippedSeenLive).toBeGreaterThanOrEqual(1);
  });
});

describe('topics', () => {
  const follow = async (user: string, topic: string): Promise<GraphQLResponse> =>
    postGraphQL(subscribeUrl, 'mutation Follow($topic: String!) { follow(topic: $topic) }', { token: userToken(user, { tenant: 'acme' }), variables: { topic } });

  it("a TOPIC publish reaches a connected follower live and an offline follower's device", async () => {
    for (const user of ['dan', 'erin']) {
      expect((await follow(user, 'jazz')).body.data?.['follow']).toBe(true);
      await registerHook(user, `jazz-${user}`);
    }
    const following = await postGraphQL(subscribeUrl, '{ following }', { token: userToken('dan', { tenant: 'acme' }) });
    expect(following.body.data?.['following']).toEqual(['jazz']);
    // dan subscribes after following: his subscription hears the topic
    const live = collect(wsClient(wsUrl, { token: userToken('dan', { tenant: 'acme' }) }), 'subscription { onNotificationReceived(userName: "dan") { id text audience } }');
    await eventually(async () => {
      await publish({ to: 'dan', text: 'ping', push: 'NEVER' });
      return live.results.length > 0;
    }, "dan's subscription to open");

    const id = await publish({ to: 'jazz', text: 'new episode', audience: 'TOPIC' });
    await eventually(() => live.results.some((result) => (result.data?.['onNotificationReceived'] as { id: string }).id === id), 'dan to receive it live');
    expect(live.results.at(-1)?.data?.['onNotificationReceived']).toEqual({ id, text: 'new episode', audience: 'TOPIC' });
    await eventually(() => to('jazz-erin').length > 0, "erin's webhook delivery");
    await workerIdle();
    expect(to('jazz-erin').map((request) => verified(request))).toEqual([expect.objectContaining({ id, audience: 'TOPIC', to: 'jazz', user: 'erin' })]);
    expect(to('jazz-dan')).toEqual([]);
  });

  it('unfollow stops the pushes; a bad topic is BAD_USER_INPUT', async () => {
    await follow('fay', 'rock');
    await registerHook('fay', 'rock-fay');
    const unfollowed = await postGraphQL(subscribeUrl, 'mutation { unfollow(topic: "rock") }', { token: userToken('fay', { tenant: 'acme' }) });
    expect(unfollowed.body.data?.['unfollow']).toBe(true);
    await publish({ to: 'rock', text: 'nobody follows', audience: 'TOPIC', push: 'ALWAYS' });
    await registerHook('gus', 'gus');
    const after = await publish({ to: 'gus', text: 'after it', push: 'ALWAYS' });
    await eventually(() => to('gus').length > 0, "gus's webhook delivery");
    await workerIdle();
    expect(to('gus').map((request) => verified(request)['id'])).toEqual([after]);
    expect(to('rock-fay')).toEqual([]);

    expect(errorCode(await follow('fay', 'no:colons'))).toBe('BAD_USER_INPUT');
  });

  it('follow works over the WebSocket too', async () => {
    const result = collect(wsClient(wsUrl, { token: userToken('ivy', { tenant: 'acme' }) }), 'mutation { follow(topic: "blues") }');
    expect(await result.nth(0)).toEqual({ data: { follow: true } });
    const following = await postGraphQL(subscribeUrl, '{ following }', { token: userToken('ivy', { tenant: 'acme' }) });
    expect(following.body.data?.['following']).toEqual(['blues']);
  });
});

describe('gRPC Send', () => {
  it('takes the push policy and the TOPIC audience: NEVER queues nothing, unspecified is WHEN_OFFLINE', async () => {
    await postGraphQL(subscribeUrl, 'mutation { follow(topic: "grpc-news") }', { token: userToken('hugo', { tenant: 'acme' }) });
    await registerHook('hugo', 'grpc-hugo');
    const client = publisherClient(herald.publishGrpcPort ?? 0);
    await grpcSend(client, service, { to: 'grpc-news', text: 'not pushed', audience: 'AUDIENCE_TOPIC', push: 'PUSH_POLICY_NEVER' });
    const pushed = await grpcSend(client, service, { to: 'grpc-news', text: 'pushed', audience: 'AUDIENCE_TOPIC' });
    await eventually(() => to('grpc-hugo').length > 0, "hugo's webhook delivery");
    await workerIdle();
    expect(to('grpc-hugo').map((request) => verified(request))).toEqual([expect.objectContaining({ id: pushed.id, audience: 'TOPIC', text: 'pushed' })]);
  });
});
