/**
 * APNs direct and the per-notification push options, through the real worker: Herald
 * started as `main.ts` starts it (`startHerald` in the all-in-one mode on a real Redis,
 * its push worker configured by `PUSH_APNS_*`, FCM, VAPID and webhook settings), devices
 * registered over GraphQL, and local servers speaking each provider's protocol — the APNs
 * stand-in verifies every provider token's ES256 signature with the public half of a key
 * pair made for this run.
 *
 * The worker sends for real (`dryRun: false`) without `NODE_ENV=production`, which would
 * refuse the stand-ins' `http://` URLs; they listen on 127.0.0.1, which
 * `PUSH_ALLOWED_NETWORKS` allows here.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import webPush from 'web-push';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readConfig } from '../../../src/config/index.js';
import { startHerald, type RunningHerald } from '../../../src/servers/herald.js';
import { startApnsStandIn, type ApnsStandIn } from '../../support/apns-server.js';
import { closeGrpcClients, grpcSend, publisherClient } from '../../support/grpc.js';
import { quietLogger } from '../../support/herald.js';
import { errorCode, postGraphQL } from '../../support/http.js';
import { createBrowserSubscription, LOCAL_NETWORKS, startFcmStandIn, startHttpRecorder, type FcmStandIn, type HttpRecorder } from '../../support/push-servers.js';
import { eventually } from '../../support/push-worker.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';
import { serviceToken, TEST_SECRET, userToken } from '../../support/tokens.js';

const WEBHOOK_SECRET = `whsec_${Buffer.alloc(32, 5).toString('base64')}`;

let redis: RedisServer;
let apns: ApnsStandIn;
let fcm: FcmStandIn;
let hooks: HttpRecorder;
let herald: RunningHerald;
let subscribeUrl: string;
let publishUrl: string;
const service = serviceToken({ tenant: 'acme' });

beforeAll(async () => {
  [redis, apns, fcm, hooks] = await Promise.all([startRedisServer(), startApnsStandIn(), startFcmStandIn(), startHttpRecorder()]);
  hooks.answer = () => ({ status: 201 });
  const accountFile = join(mkdtempSync(join(tmpdir(), 'herald-apns-')), 'service-account.json');
  const account = fcm.serviceAccount;
  writeFileSync(accountFile, JSON.stringify({ type: 'service_account', project_id: account.projectId, client_email: account.clientEmail, private_key: account.privateKey }));
  const vapid = webPush.generateVAPIDKeys();
  const config = readConfig({
    REDIS_URL: redis.url,
    JWT_SECRET: TEST_SECRET,
    HOST: '127.0.0.1',
    SUBSCRIBE_PORT: '0',
    PUBLISH_PORT: '0',
    GRPC_PORT: '0',
    PUBLISH_GRPC_PORT: '0',
    PUSH_APNS_KEY_ID: apns.credentials.keyId,
    PUSH_APNS_TEAM_ID: apns.credentials.teamId,
    PUSH_APNS_TOPIC: apns.credentials.topic,
    PUSH_APNS_KEY: apns.credentials.privateKey,
    PUSH_APNS_URL: apns.url,
    PUSH_FCM_SERVICE_ACCOUNT_FILE: accountFile,
    PUSH_FCM_URL: fcm.url,
    PUSH_FCM_TOKEN_URL: fcm.tokenUrl,
    PUSH_VAPID_SUBJECT: 'mailto:ops@example.com',
    PUSH_VAPID_PUBLIC_KEY: vapid.publicKey,
    PUSH_VAPID_PRIVATE_KEY: vapid.privateKey,
    PUSH_WEBHOOK_SECRET: WEBHOOK_SECRET,
    PUSH_RETRY_WINDOW_MS: '300',
    PUSH_RETRY_POLL_MS: '20',
    PUSH_ALLOWED_NETWORKS: LOCAL_NETWORKS,
  });
  herald = await startHerald({ ...config, push: { ...config.push, dryRun: false } }, 'all', quietLogger);
  subscribeUrl = `http://127.0.0.1:${herald.subscribePort}/graphql`;
  publishUrl = `http://127.0.0.1:${herald.publishPort}/graphql`;
});
afterAll(async () => {
  closeGrpcClients();
  await herald?.stop();
  await Promise.all([apns?.close(), fcm?.close(), hooks?.close(), redis?.stop()]);
});

const REGISTER = `mutation Register($device: DeviceInput!) { registerDevice(device: $device) { id kind token } }`;
const SEND = `mutation Send($to: String!, $text: String!, $collapseKey: String, $ttl: Int, $priority: PushPriority) {
  sendNotification(to: $to, text: $text, push: ALWAYS, collapseKey: $collapseKey, ttl: $ttl, priority: $priority) { id }
}`;

/** A device token of 32 bytes, in hex, distinct per `seed`. */
const apnsToken = (seed: number): string => seed.toString(16).padStart(2, '0').repeat(32);

async function register(user: string, device: Record<string, unknown>): Promise<{ id: string; kind: string; token: string | null }> {
  const response = await postGraphQL(subscribeUrl, REGISTER, { token: userToken(user, { tenant: 'acme' }), variables: { device } });
  expect(response.body.errors).toBeUndefined();
  return response.body.data?.['registerDevice'] as { id: string; kind: string; token: string | null };
}

async function publish(variables: Record<string, unknown>): Promise<string> {
  const response = await postGraphQL(publishUrl, SEND, { token: service, variables });
  expect(response.body.errors).toBeUndefined();
  return (response.body.data?.['sendNotification'] as { id: string }).id;
}

async function devicesOf(user: string): Promise<Array<{ id: string; kind: string; token: string | null }>> {
  const response = await postGraphQL(subscribeUrl, '{ devices { id kind token } }', { token: userToken(user, { tenant: 'acme' }) });
  return response.body.data?.['devices'] as Array<{ id: string; kind: string; token: string | null }>;
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

const toToken = (token: string) => apns.requests.filter((request) => request.token === token);

describe('APNs direct', () => {
  it('a USER push reaches an APNS device: path, topic, a provider token APNs verifies, an alert with the ids', async () => {
    const token = apnsToken(1);
    const device = await register('ann', { kind: 'APNS', token: token.toUpperCase() });
    expect(device).toMatchObject({ kind: 'APNS', token }); // kept in lower case
    const id = await publish({ to: 'ann', text: 'your order shipped' });
    await eventually(() => toToken(token).length > 0, "ann's APNs push");
    const [request] = toToken(token);
    expect(request?.headers).toMatchObject({ ':path': `/3/device/${token}`, 'apns-topic': 'com.example.herald', 'apns-push-type': 'alert' });
    expect(String(request?.headers['authorization'])).toMatch(/^bearer /);
    expect(request?.jwt.header).toEqual({ alg: 'ES256', kid: apns.credentials.keyId });
    expect(request?.jwt.claims).toMatchObject({ iss: apns.credentials.teamId });
    // no option set: none of their headers, APNs' defaults apply
    expect(request?.headers).not.toHaveProperty('apns-priority');
    expect(request?.headers).not.toHaveProperty('apns-expiration');
    expect(request?.headers).not.toHaveProperty('apns-collapse-id');
    expect(request?.body).toEqual({ aps: { alert: { body: 'your order shipped' } }, id, tenant: 'acme', audience: 'USER', to: 'ann', user: 'ann', sender: 'billing', timestamp: expect.any(Number) });
  });

  it.each([
    [410, 'Unregistered', 2],
    [400, 'BadDeviceToken', 3],
  ])('%i %s removes the device after that one answer: devices no longer lists it', async (status, reason, seed) => {
    const user = `gone-${seed}`;
    const token = apnsToken(seed);
    const kept = apnsToken(seed + 100);
    await register(user, { kind: 'APNS', token });
    await register(user, { kind: 'APNS', token: kept });
    apns.cues.set(token, [{ status, reason }]);
    const removedBefore = herald.pushWorker?.counters.devicesRemoved ?? 0;
    await publish({ to: user, text: 'are you there?' });
    await eventually(async () => (await devicesOf(user)).length === 1, `${user}'s gone device to be removed`);
    expect(await devicesOf(user)).toEqual([expect.objectContaining({ kind: 'APNS', token: kept })]);
    await workerIdle();
    expect(toToken(token)).toHaveLength(1); // not retried
    expect(toToken(kept)).toHaveLength(1);
    expect((herald.pushWorker?.counters.devicesRemoved ?? 0) - removedBefore).toBe(1);
  });

  it('429 and 503 are retried (Retry-After honoured) until APNs accepts it, once', async () => {
    const token = apnsToken(4);
    await register('flaky', { kind: 'APNS', token });
    apns.cues.set(token, [{ status: 429, reason: 'TooManyRequests', headers: { 'retry-after': '1' } }, { status: 503, reason: 'ServiceUnavailable' }]);
    const id = await publish({ to: 'flaky', text: 'eventually' });
    await eventually(() => toToken(token).length === 3, 'the third attempt');
    await workerIdle();
    const attempts = toToken(token);
    expect(attempts.map((request) => request.body['id'])).toEqual([id, id, id]);
    // the 429 asked for 1 s; the schedule alone (PUSH_RETRY_WINDOW_MS 300, polled every 20 ms) would have come back within a few tens of ms
    const [first, second] = attempts;
    expect((second?.at ?? 0) - (first?.at ?? 0)).toBeGreaterThanOrEqual(950);
    expect(await devicesOf('flaky')).toHaveLength(1);
  });

  it('403 ExpiredProviderToken: the token is renewed and the push sent once more; refused again, it fails for good and the device stays', async () => {
    const renewed = apnsToken(5);
    await register('expired', { kind: 'APNS', token: renewed });
    apns.cues.set(renewed, [{ status: 403, reason: 'ExpiredProviderToken' }]);
    await publish({ to: 'expired', text: 'after a renewal' });
    await eventually(() => toToken(renewed).length === 1, 'the push with a renewed token');

    const refused = apnsToken(6);
    await register('refused', { kind: 'APNS', token: refused });
    apns.cues.set(refused, [
      { status: 403, reason: 'InvalidProviderToken' },
      { status: 403, reason: 'InvalidProviderToken' },
    ]);
    const deadBefore = herald.pushWorker?.counters.deadLettered ?? 0;
    await publish({ to: 'refused', text: 'never accepted' });
    await eventually(() => (herald.pushWorker?.counters.deadLettered ?? 0) > deadBefore, 'the refused push to be dead-lettered');
    await workerIdle();
    expect(apns.cues.get(refused)).toEqual([]); // asked exactly twice: the first try and the one renewal
    expect(toToken(refused)).toEqual([]);
    expect(await devicesOf('refused')).toHaveLength(1);
  });

  it('a bad device token is BAD_USER_INPUT naming device.token', async () => {
    const response = await postGraphQL(subscribeUrl, REGISTER, { token: userToken('ann', { tenant: 'acme' }), variables: { device: { kind: 'APNS', token: 'not-hex' } } });
    expect(errorCode(response)).toBe('BAD_USER_INPUT');
    expect(response.body.errors?.[0]?.message).toContain('device.token');
  });
});

describe('per-notification push options', () => {
  it('arrive at APNs, FCM, Web Push and the webhook, each as its provider field', async () => {
    const token = apnsToken(7);
    await register('opt', { kind: 'APNS', token });
    await register('opt', { kind: 'FCM', token: 'fcm-opt-token' });
    const browser = createBrowserSubscription(`${hooks.url}/webpush/opt`);
    await register('opt', { kind: 'WEB_PUSH', subscription: browser.json });
    await register('opt', { kind: 'WEBHOOK', url: `${hooks.url}/hook/opt` });
    const before = Math.floor(Date.now() / 1000);
    const id = await publish({ to: 'opt', text: 'score 2-1', collapseKey: 'match-42', ttl: 600, priority: 'NORMAL' });
    const after = Math.ceil(Date.now() / 1000);
    const hook = () => hooks.requests.find((request) => request.path === '/hook/opt');
    const webPushed = () => hooks.requests.find((request) => request.path === '/webpush/opt');
    const fcmMessage = () => fcm.messages.find((message) => message.token === 'fcm-opt-token');
    await eventually(() => toToken(token).length > 0 && hook() !== undefined && webPushed() !== undefined && fcmMessage() !== undefined, 'all four pushes');

    const apnsHeaders = toToken(token)[0]?.headers ?? {};
    expect(apnsHeaders['apns-collapse-id']).toBe('match-42');
    expect(apnsHeaders['apns-priority']).toBe('5');
    const expiration = Number(apnsHeaders['apns-expiration']);
    expect(expiration).toBeGreaterThanOrEqual(before + 600);
    expect(expiration).toBeLessThanOrEqual(after + 600 + 60);

    const message = fcmMessage()?.body['message'] as Record<string, unknown>;
    expect(message['android']).toEqual({ collapse_key: 'match-42', ttl: '600s', priority: 'NORMAL' });
    expect(message['apns']).toEqual({ headers: { 'apns-collapse-id': 'match-42', 'apns-expiration': expect.any(String), 'apns-priority': '5' } });
    expect(message['webpush']).toEqual({ headers: { TTL: '600', Urgency: 'normal', Topic: 'match-42' } });

    expect(webPushed()?.headers).toMatchObject({ ttl: '600', urgency: 'normal', topic: 'match-42' });

    expect(JSON.parse(hook()?.body.toString('utf8') ?? '{}')).toMatchObject({ id, collapseKey: 'match-42', ttl: 600, priority: 'NORMAL' });
  });

  it('gRPC Send carries them too; a ttl of 0 (now or never) is kept', async () => {
    await register('grpc-opt', { kind: 'WEBHOOK', url: `${hooks.url}/hook/grpc-opt` });
    const client = publisherClient(herald.publishGrpcPort ?? 0);
    const sent = await grpcSend(client, service, { to: 'grpc-opt', text: 'now or never', push: 'PUSH_POLICY_ALWAYS', ttl: 0, priority: 'PUSH_PRIORITY_HIGH', collapseKey: 'k1' });
    const hook = () => hooks.requests.find((request) => request.path === '/hook/grpc-opt');
    await eventually(() => hook() !== undefined, 'the gRPC-sent push');
    expect(JSON.parse(hook()?.body.toString('utf8') ?? '{}')).toMatchObject({ id: sent.id, ttl: 0, priority: 'HIGH', collapseKey: 'k1' });
  });

  it('a bad option is BAD_USER_INPUT naming it, and nothing is sent', async () => {
    for (const [variables, field] of [
      [{ ttl: 2_419_201 }, 'ttl'],
      [{ collapseKey: 'way-too-long-for-a-web-push-topic-header' }, 'collapseKey'],
    ] as const) {
      const response = await postGraphQL(publishUrl, SEND, { token: service, variables: { to: 'opt', text: 'x', ...variables } });
      expect(errorCode(response)).toBe('BAD_USER_INPUT');
      expect(response.body.errors?.[0]?.message).toMatch(new RegExp(`^${field} `));
    }
    const unknownPriority = await postGraphQL(publishUrl, SEND, { token: service, variables: { to: 'opt', text: 'x', priority: 'URGENT' } });
    expect(unknownPriority.body.errors?.[0]?.message).toContain('PushPriority');
  });
});
