/**
 * "Why didn't X get Y", answered by `delivery(id)`, end to end on real processes: Herald
 * as the image runs it (`node dist/main.js subscribe`, `… publish`, production) and a push worker
 * (`node dist/main.js push`, sending for real) on a real Redis, pushing to local servers
 * that speak FCM, APNs, Web Push and webhooks.
 *
 * The story: a user with one live tab (a graphql-ws client) and two phones, one whose app
 * was uninstalled (FCM answers `UNREGISTERED`) and one whose FCM answers 503 once. The
 * ledger shows it all: delivered live to 1 subscription on WebSocket; the gone phone
 * removed after one answer, with FCM's words; the flaky one failed, retried, accepted.
 * FCM got exactly one request for the gone phone and two for the flaky one.
 *
 * Token hygiene, recorded: a gone device of each provider (FCM `UNREGISTERED`, APNs 410
 * `Unregistered`, Web Push 410, a webhook's 410) is removed after one answer, the removal
 * is in the ledger with the provider's answer, and counted by kind in the worker's metrics.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import webPush from 'web-push';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCidr } from '../../../src/config/networks.js';
import { createDeviceStore } from '../../../src/push/devices.js';
import { createPushKeys } from '../../../src/push/keys.js';
import { createNetworkPolicy } from '../../../src/push/network-policy.js';
import { startApnsStandIn, type ApnsStandIn } from '../../support/apns-server.js';
import { postGraphQL } from '../../support/http.js';
import { startHeraldProcess, stopAllProcesses, type HeraldProcess } from '../../support/process.js';
import { createBrowserSubscription, startFcmStandIn, startHttpRecorder, type FcmStandIn, type HttpRecorder } from '../../support/push-servers.js';
import { eventually } from '../../support/push-worker.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';
import { serviceToken, userToken } from '../../support/tokens.js';
import { closeAllClients, collect, wsClient } from '../../support/ws.js';

const WEBHOOK_SECRET = `whsec_${Buffer.alloc(32, 3).toString('base64')}`;
/** An APNs device token (hex) the APNs stand-in answers 410 Unregistered. */
const DELETED_APP = 'de1e7ed0'.repeat(8);

const DELIVERY = `query Delivery($id: ID!) { delivery(id: $id) {
  id eventsDropped
  accepted { publisher audience to push }
  live { subscriptions servers byTransport { websocket sse grpc } }
  devices { user device kind status attempts lastReason lastDetail }
  events { kind user device deviceKind attempt reason detail }
} }`;
const SEND = `mutation Send($to: String!, $text: String!) { sendNotification(to: $to, text: $text, push: ALWAYS) { id receivedUsers } }`;
const REGISTER = `mutation Register($device: DeviceInput!) { registerDevice(device: $device) { id } }`;
const DEVICES = '{ devices { id } }';
const ON_NOTIFICATION_ID = 'subscription On($userName: String!) { onNotificationReceived(userName: $userName) { id text } }';

interface DeviceRow {
  user: string;
  device: string;
  kind: string | null;
  status: string;
  attempts: number;
  lastReason: string | null;
  lastDetail: string | null;
}
interface EventRow {
  kind: string;
  user: string | null;
  device: string | null;
  deviceKind: string | null;
  attempt: number | null;
  reason: string | null;
  detail: string | null;
}
interface Delivery {
  id: string;
  eventsDropped: number;
  accepted: { publisher: string; audience: string; to: string; push: string } | null;
  live: { subscriptions: number; servers: number; byTransport: { websocket: number; sse: number; grpc: number } };
  devices: DeviceRow[];
  events: EventRow[];
}

let redis: RedisServer;
let fcm: FcmStandIn;
let apns: ApnsStandIn;
let hooks: HttpRecorder;
let subscriber: HeraldProcess;
let publisher: HeraldProcess;
let worker: HeraldProcess;
let publishUrl: string;
let subscribeUrl: string;

beforeAll(async () => {
  [redis, fcm, apns, hooks] = await Promise.all([startRedisServer(), startFcmStandIn(), startApnsStandIn(), startHttpRecorder()]);
  fcm.unregistered.add('uninstalled-phone');
  let flakyAnswers = 0;
  fcm.answer = (message) => (message.token === 'flaky-phone' && (flakyAnswers += 1) === 1 ? { status: 503 } : undefined);
  apns.cues.set(DELETED_APP, [{ status: 410, reason: 'Unregistered' }]);
  hooks.answer = (request) => (request.path.endsWith('/gone') ? { status: 410 } : { status: 204 });
  const file = join(mkdtempSync(join(tmpdir(), 'herald-story-')), 'service-account.json');
  const { projectId, clientEmail, privateKey } = fcm.serviceAccount;
  writeFileSync(file, JSON.stringify({ type: 'service_account', project_id: projectId, client_email: clientEmail, private_key: privateKey }));
  const vapid = webPush.generateVAPIDKeys();
  const shared = {
    REDIS_URL: redis.url,
    PUSH_WEBHOOK_SECRET: WEBHOOK_SECRET,
    PUSH_FCM_SERVICE_ACCOUNT_FILE: file,
    PUSH_FCM_URL: fcm.url,
    PUSH_FCM_TOKEN_URL: fcm.tokenUrl,
    PUSH_APNS_KEY_ID: apns.credentials.keyId,
    PUSH_APNS_TEAM_ID: apns.credentials.teamId,
    PUSH_APNS_TOPIC: apns.credentials.topic,
    PUSH_APNS_KEY: apns.credentials.privateKey,
    PUSH_APNS_URL: apns.url,
    PUSH_VAPID_SUBJECT: 'mailto:ops@example.com',
    PUSH_VAPID_PUBLIC_KEY: vapid.publicKey,
    PUSH_VAPID_PRIVATE_KEY: vapid.privateKey,
    PUSH_ALLOWED_NETWORKS: '127.0.0.1/32',
  };
  // subscribe and publish servers apart: `all` would run a second push worker
  [subscriber, publisher, worker] = await Promise.all([
    startHeraldProcess('subscribe', { env: shared }),
    startHeraldProcess('publish', { env: shared }),
    startHeraldProcess('push', {
      env: {
        ...shared,
        METRICS_PORT: '0',
        PUSH_OFFLINE_GRACE_MS: '0',
        // the first retry falls within 2 s · 1/127 ≈ 16 ms of the failure
        PUSH_RETRY_WINDOW_MS: '2000',
        PUSH_RETRY_POLL_MS: '50',
      },
    }),
  ]);
  publishUrl = `http://127.0.0.1:${publisher.publishPort ?? 0}/graphql`;
  subscribeUrl = `http://127.0.0.1:${subscriber.subscribePort ?? 0}/graphql`;
});
afterAll(async () => {
  await closeAllClients();
  await stopAllProcesses();
  await Promise.all([fcm?.close(), apns?.close(), hooks?.close()]);
  await redis?.stop();
});

async function send(to: string, text: string): Promise<{ id: string; receivedUsers: number }> {
  const response = await postGraphQL(publishUrl, SEND, { token: serviceToken(), variables: { to, text } });
  expect(response.body.errors).toBeUndefined();
  return response.body.data?.['sendNotification'] as { id: string; receivedUsers: number };
}

async function delivery(url: string, token: string, id: string): Promise<Delivery | null> {
  const response = await postGraphQL(url, DELIVERY, { token, variables: { id } });
  if (response.body.errors) throw new Error(`delivery: ${JSON.stringify(response.body.errors)}`);
  return (response.body.data?.['delivery'] ?? null) as Delivery | null;
}

async function register(user: string, device: Record<string, unknown>): Promise<string> {
  const response = await postGraphQL(subscribeUrl, REGISTER, { token: userToken(user), variables: { device } });
  expect(response.body.errors).toBeUndefined();
  return (response.body.data?.['registerDevice'] as { id: string }).id;
}

async function deviceIds(user: string): Promise<string[]> {
  const response = await postGraphQL(subscribeUrl, DEVICES, { token: userToken(user) });
  return (response.body.data?.['devices'] as Array<{ id: string }>).map((device) => device.id);
}

/** The worker's `/metrics` samples by name and labels (`role` dropped). */
async function scrape(): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${worker.metricsPort ?? 0}/metrics`)).text();
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line === '') continue;
    const series = line.slice(0, line.lastIndexOf(' ')).replace(/,?role="push"/, '').replace('{}', '').replace('{,', '{');
    samples.set(series, Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return samples;
}

const settled = (row: DeviceRow | undefined): boolean => row !== undefined && ['ACCEPTED', 'REMOVED', 'DEAD_LETTERED'].includes(row.status);

describe('delivery(id): the whole story of one notification', () => {
  it('a live tab, a gone phone and a flaky one: delivered live 1, the gone one removed after one answer, the flaky one retried then accepted', async () => {
    const gone = await register('maya', { kind: 'FCM', token: 'uninstalled-phone' });
    const flaky = await register('maya', { kind: 'FCM', token: 'flaky-phone' });
    const tab = collect(wsClient(`ws://127.0.0.1:${subscriber.subscribePort ?? 0}/graphql`, { token: userToken('maya') }), ON_NOTIFICATION_ID, { userName: 'maya' });
    // the tab is live once a probe reaches it (NEVER pushes nothing)
    await eventually(async () => {
      const probe = await postGraphQL(publishUrl, 'mutation { sendNotification(to: "maya", text: "probe", push: NEVER) { receivedUsers } }', { token: serviceToken() });
      return (probe.body.data?.['sendNotification'] as { receivedUsers: number } | undefined)?.receivedUsers === 1;
    }, "maya's tab to be live");

    const sent = await send('maya', 'your parcel is at the door');
    expect(sent.receivedUsers).toBe(1);
    await eventually(async () => {
      const shown = await delivery(publishUrl, serviceToken(), sent.id);
      return shown !== null && shown.devices.length === 2 && shown.devices.every(settled) && shown.live.subscriptions === 1;
    }, 'both phones settled in the ledger', 30_000);
    const story = (await delivery(publishUrl, serviceToken(), sent.id)) as Delivery;

    expect(tab.results.some((result) => JSON.stringify(result).includes(sent.id))).toBe(true);
    expect(story.accepted).toEqual({ publisher: 'billing', audience: 'USER', to: 'maya', push: 'ALWAYS' });
    expect(story.live).toEqual({ subscriptions: 1, servers: 1, byTransport: { websocket: 1, sse: 0, grpc: 0 } });
    const byDevice = new Map(story.devices.map((row) => [row.device, row]));
    expect(byDevice.get(gone)).toMatchObject({ user: 'maya', kind: 'FCM', status: 'REMOVED', attempts: 1, lastReason: 'UNREGISTERED' });
    expect(byDevice.get(gone)?.lastDetail).toMatch(/UNREGISTERED/);
    expect(byDevice.get(flaky)).toMatchObject({ user: 'maya', kind: 'FCM', status: 'ACCEPTED', attempts: 2 });
    // the flaky phone's steps, in order
    const steps = story.events.filter((event) => event.device === flaky).map((event) => `${event.kind}${event.attempt === null ? '' : `#${event.attempt}`}${event.reason === null ? '' : `:${event.reason}`}`);
    expect(steps).toEqual(['PUSH_QUEUED#1', 'PUSH_FAILED#1:PROVIDER_ERROR', 'PUSH_RETRY#1', 'PUSH_QUEUED#2', 'PUSH_ACCEPTED#2']);
    expect(story.events[0]?.kind).toBe('ACCEPTED');

    // FCM heard the gone phone once, the flaky one twice: no duplicate
    expect(fcm.messages.filter((message) => message.token === 'uninstalled-phone' && message.body['message'] !== undefined).length).toBe(1);
    expect(fcm.messages.filter((message) => message.token === 'flaky-phone').length).toBe(2);
    expect(await deviceIds('maya')).toEqual([flaky]);

    // maya reads her own part on the subscribe server; another user reads nothing of it
    const hers = (await delivery(subscribeUrl, userToken('maya'), sent.id)) as Delivery;
    expect(hers.devices.map((row) => row.device).sort()).toEqual([gone, flaky].sort());
    const others = await delivery(subscribeUrl, userToken('nina'), sent.id);
    expect(others?.devices ?? []).toEqual([]);
  });
});

describe('token hygiene, recorded', () => {
  const policy = createNetworkPolicy({ allowedNetworks: [parseCidr('127.0.0.0/8')] });
  const cases = [
    { kind: 'FCM', user: 'fcm-user', device: () => ({ kind: 'FCM', token: 'uninstalled-phone' }) as const, answer: /UNREGISTERED/ },
    { kind: 'APNS', user: 'apns-user', device: () => ({ kind: 'APNS', token: DELETED_APP }) as const, answer: /Unregistered/ },
    { kind: 'WEB_PUSH', user: 'webpush-user', device: () => ({ kind: 'WEB_PUSH', subscription: createBrowserSubscription(`${hooks.url}/push-service/gone`).json }) as const, answer: /410/ },
    { kind: 'WEBHOOK', user: 'webhook-user', device: () => ({ kind: 'WEBHOOK', url: `${hooks.url}/hook/gone` }) as const, answer: /410/ },
  ];
  it.each(cases)('a gone $kind device: removed after one answer, in the ledger with the answer, counted', async ({ kind, user, device, answer }) => {
    // http:// targets on 127.0.0.1: registered in the store (the production edge takes https:// only)
    const store = createDeviceStore({ redis: redis.client(), keys: createPushKeys('herald'), allowInsecureUrls: true, networkPolicy: policy });
    const registered = await store.register('acme', user, device());
    const before = (await scrape()).get(`herald_push_devices_removed_total{kind="${kind}"}`) ?? 0;
    const sent = await send(user, 'a notification for a device that is gone');
    await eventually(async () => settled((await delivery(publishUrl, serviceToken(), sent.id))?.devices[0]), `the ${kind} device settled`, 30_000);
    const shown = (await delivery(publishUrl, serviceToken(), sent.id)) as Delivery;
    expect(shown.devices).toHaveLength(1);
    expect(shown.devices[0]).toMatchObject({ user, device: registered.id, kind, status: 'REMOVED', attempts: 1, lastReason: 'UNREGISTERED' });
    const removal = shown.events.find((event) => event.kind === 'DEVICE_REMOVED');
    expect(removal).toMatchObject({ user, device: registered.id, deviceKind: kind });
    expect(removal?.detail).toMatch(answer);
    expect(await store.list('acme', user)).toEqual([]);
    await eventually(async () => (await scrape()).get(`herald_push_devices_removed_total{kind="${kind}"}`) === before + 1, `the ${kind} removal counted`);
  });
});
