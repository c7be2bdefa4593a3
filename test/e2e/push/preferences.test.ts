/**
 * The push worker enforces its users' preferences, on a real Redis with local providers.
 *
 * 1. Herald as the image runs it (`node dist/main.js subscribe`, `… publish`, `… push`):
 *    a user mutes a category for their webhook (`setPreference`); a notification of that
 *    category, to the user (USER) or to a topic they follow (TOPIC), reaches their phone
 *    (FCM) and not the webhook, and `delivery(id)` shows the webhook SKIPPED, "refused by
 *    preference"; a `critical: true` one reaches both.
 * 2. Quiet hours ("22:00"–"07:00" Europe/Paris), with a worker whose clock the test sets:
 *    at 23:00 Paris a push waits in the retry set, due at 07:00 Paris the next morning;
 *    nothing arrives meanwhile; past 07:00 it is sent once — by another worker, the first
 *    one stopped (the deferral is in Redis); a critical one is sent at once; one whose ttl
 *    ends within the quiet hours is skipped; a user who mutes the category while their push
 *    waits is not pushed when it comes due.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCidr } from '../../../src/config/networks.js';
import type { LedgerEvent, LedgerWriter, PushEvent } from '../../../src/ledger/events.js';
import { createPreferenceKeys } from '../../../src/preferences/keys.js';
import { createRedisPreferenceStore } from '../../../src/preferences/redis-store.js';
import { createDeviceStore } from '../../../src/push/devices.js';
import type { PushNotification } from '../../../src/push/entry.js';
import { createPushKeys } from '../../../src/push/keys.js';
import { createNetworkPolicy } from '../../../src/push/network-policy.js';
import { createWebhookSender } from '../../../src/push/senders/webhook.js';
import { postGraphQL } from '../../support/http.js';
import { startHeraldProcess, stopAllProcesses, type HeraldProcess } from '../../support/process.js';
import { localNetworkPolicy, startFcmStandIn, startHttpRecorder, type FcmStandIn, type HttpRecorder } from '../../support/push-servers.js';
import { createPushRig, duplicates, eventually, quietLogger } from '../../support/push-worker.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';
import { serviceToken, userToken } from '../../support/tokens.js';

const WEBHOOK_SECRET = `whsec_${Buffer.alloc(32, 5).toString('base64')}`;
const DELIVERY = `query Delivery($id: ID!) { delivery(id: $id) {
  devices { user device kind status lastDetail }
  events { kind device detail nextAttemptAt }
} }`;
const SEND = `mutation Send($to: String!, $text: String!, $audience: Audience, $category: String, $critical: Boolean) {
  sendNotification(to: $to, text: $text, audience: $audience, category: $category, critical: $critical, push: ALWAYS) { id }
}`;
const SET_PREFERENCE = 'mutation Set($category: String!, $channel: Channel!, $enabled: Boolean!) { setPreference(category: $category, channel: $channel, enabled: $enabled) { categories { category } } }';

interface DeviceRow {
  user: string;
  device: string;
  kind: string | null;
  status: string;
  lastDetail: string | null;
}

let redis: RedisServer;
let fcm: FcmStandIn;
let hooks: HttpRecorder;

beforeAll(async () => {
  [redis, fcm, hooks] = await Promise.all([startRedisServer(), startFcmStandIn(), startHttpRecorder()]);
  hooks.answer = () => ({ status: 204 });
});
afterAll(async () => {
  await stopAllProcesses();
  await Promise.all([fcm?.close(), hooks?.close()]);
  await redis?.stop();
});

describe('muted categories, on Herald as deployed', () => {
  let publishUrl: string;
  let subscribeUrl: string;

  beforeAll(async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'herald-prefs-')), 'service-account.json');
    const { projectId, clientEmail, privateKey } = fcm.serviceAccount;
    writeFileSync(file, JSON.stringify({ type: 'service_account', project_id: projectId, client_email: clientEmail, private_key: privateKey }));
    const shared = {
      REDIS_URL: redis.url,
      PUSH_WEBHOOK_SECRET: WEBHOOK_SECRET,
      PUSH_FCM_SERVICE_ACCOUNT_FILE: file,
      PUSH_FCM_URL: fcm.url,
      PUSH_FCM_TOKEN_URL: fcm.tokenUrl,
      PUSH_ALLOWED_NETWORKS: '127.0.0.1/32',
    };
    const [subscriber, publisher]: HeraldProcess[] = await Promise.all([
      startHeraldProcess('subscribe', { env: shared }),
      startHeraldProcess('publish', { env: shared }),
      startHeraldProcess('push', { env: { ...shared, PUSH_OFFLINE_GRACE_MS: '0', PUSH_RETRY_POLL_MS: '50' } }),
    ]);
    publishUrl = `http://127.0.0.1:${publisher?.publishPort ?? 0}/graphql`;
    subscribeUrl = `http://127.0.0.1:${subscriber?.subscribePort ?? 0}/graphql`;
  });

  const mutate = async (url: string, query: string, token: string, variables: Record<string, unknown>): Promise<Record<string, unknown>> => {
    const response = await postGraphQL(url, query, { token, variables });
    expect(response.body.errors).toBeUndefined();
    return response.body.data ?? {};
  };
  const send = async (to: string, variables: Record<string, unknown>): Promise<string> =>
    ((await mutate(publishUrl, SEND, serviceToken(), { to, text: `for ${to}`, ...variables }))['sendNotification'] as { id: string }).id;
  const devicesOf = async (id: string): Promise<DeviceRow[]> => {
    const response = await postGraphQL(publishUrl, DELIVERY, { token: serviceToken(), variables: { id } });
    if (response.body.errors) throw new Error(`delivery: ${JSON.stringify(response.body.errors)}`);
    return ((response.body.data?.['delivery'] as { devices: DeviceRow[] } | null) ?? { devices: [] }).devices;
  };
  /** Waits until both of the user's devices are settled in the ledger (the worker is done with the push), and returns their rows. */
  const settledRows = async (id: string): Promise<{ phone: DeviceRow | undefined; hook: DeviceRow | undefined }> => {
    await eventually(async () => {
      const rows = await devicesOf(id);
      return rows.length === 2 && rows.every((row) => ['ACCEPTED', 'SKIPPED'].includes(row.status));
    }, `${id} settled on both devices`, 30_000);
    const rows = await devicesOf(id);
    return { phone: rows.find((row) => row.kind === 'FCM'), hook: rows.find((row) => row.kind === 'WEBHOOK') };
  };
  const pushedTo = (token: string, id: string): number => fcm.messages.filter((message) => message.token === token && JSON.stringify(message.body).includes(id)).length;
  const hooked = (path: string, id: string): number => hooks.requests.filter((request) => request.path === path && request.body.toString().includes(id)).length;

  it('a category muted for the webhook: USER and TOPIC notifications reach the phone only, SKIPPED "refused by preference"; a critical one reaches both', async () => {
    const register = await mutate(subscribeUrl, 'mutation R($device: DeviceInput!) { registerDevice(device: $device) { id } }', userToken('nina'), { device: { kind: 'FCM', token: 'nina-phone' } });
    expect(register['registerDevice']).toBeDefined();
    // http:// on 127.0.0.1, so into the store directly (the production edge takes https:// only)
    const devices = createDeviceStore({ redis: redis.client(), keys: createPushKeys('herald'), allowInsecureUrls: true, networkPolicy: createNetworkPolicy({ allowedNetworks: [parseCidr('127.0.0.0/8')] }) });
    await devices.register('acme', 'nina', { kind: 'WEBHOOK', url: `${hooks.url}/hook/nina` });
    await mutate(subscribeUrl, SET_PREFERENCE, userToken('nina'), { category: 'promo', channel: 'WEBHOOK', enabled: false });
    await mutate(subscribeUrl, 'mutation F($topic: String!) { follow(topic: $topic) }', userToken('nina'), { topic: 'deals' });

    const toUser = await send('nina', { category: 'promo' });
    const toTopic = await send('deals', { audience: 'TOPIC', category: 'promo' });
    const critical = await send('nina', { category: 'promo', critical: true });
    const other = await send('nina', { category: 'receipts' });

    for (const id of [toUser, toTopic]) {
      const { phone, hook } = await settledRows(id);
      expect(phone?.status, id).toBe('ACCEPTED');
      expect(hook?.status, id).toBe('SKIPPED');
      expect(hook?.lastDetail, id).toBe('refused by preference: category "promo" is off for WEBHOOK');
      // settled: the worker is done with it, and the webhook never heard of it
      expect(hooked('/hook/nina', id), id).toBe(0);
      expect(pushedTo('nina-phone', id), id).toBe(1);
    }
    for (const id of [critical, other]) {
      const { phone, hook } = await settledRows(id);
      expect([phone?.status, hook?.status], id).toEqual(['ACCEPTED', 'ACCEPTED']);
      expect(hooked('/hook/nina', id), id).toBe(1);
      expect(pushedTo('nina-phone', id), id).toBe(1);
    }
  });
});

describe('quiet hours, on the worker’s clock', () => {
  /** A ledger that keeps every event in an array. */
  function collectingLedger(): LedgerWriter & { readonly events: Array<{ id: string; event: LedgerEvent }> } {
    const events: Array<{ id: string; event: LedgerEvent }> = [];
    return { events, record: (_tenant, id, event) => void events.push({ id, event }), flush: () => Promise.resolve() };
  }
  const pushEvents = (ledger: ReturnType<typeof collectingLedger>, id: string): PushEvent[] =>
    ledger.events.filter((one) => one.id === id && one.event.type === 'push').map((one) => one.event as PushEvent);

  it('at 23:00 Paris a push waits for 07:00 in the retry set, nothing arrives meanwhile, and past 07:00 it is sent once, by another worker; a critical one goes at once', async () => {
    const r = createPushRig(redis, 'qh1');
    const set = r.keys.retrySets[0] ?? '';
    const store = createRedisPreferenceStore({ redis: r.redis, keys: createPreferenceKeys('qh1') });
    for (const user of ['ann', 'bob', 'cat']) {
      await r.devices.register('acme', user, { kind: 'WEBHOOK', url: `${hooks.url}/qh1/${user}` });
      await store.setQuietHours('acme', user, { start: '22:00', end: '07:00', timeZone: 'Europe/Paris' });
    }
    const ledger = collectingLedger();
    // 2026-12-06 22:00 UTC is 23:00 in Paris (CET, UTC+1); the quiet hours end at 06:00 UTC the next morning
    let now = Date.parse('2026-12-06T22:00:00Z');
    const morning = Date.parse('2026-12-07T06:00:00Z');
    const webhook = { WEBHOOK: createWebhookSender({ secret: WEBHOOK_SECRET, dryRun: false, logger: quietLogger, networkPolicy: localNetworkPolicy }) };
    const options = { now: () => now, ledger, preferences: store, retryPollMs: 20 };
    const evening = await r.startWorker(webhook, options);
    const published = Math.floor(now / 1000);
    const notification = (id: string, to: string, extra: Partial<PushNotification> = {}): PushNotification => ({ id, tenant: 'acme', audience: 'USER', to, text: id, timestamp: published, sender: 'radio', ...extra });
    const arrived = (user: string): string[] => hooks.requests.filter((request) => request.path === `/qh1/${user}`).map((request) => (JSON.parse(request.body.toString()) as { id: string }).id);

    await r.queue.enqueue(notification('q1_1-0', 'ann', { category: 'news' }), 'ALWAYS');
    await r.queue.enqueue(notification('q1_2-0', 'bob', { category: 'news' }), 'ALWAYS');
    // a ttl of an hour ends long before 07:00
    await r.queue.enqueue(notification('q1_3-0', 'cat', { options: { ttl: 3600 } }), 'ALWAYS');
    await r.queue.enqueue(notification('q1_4-0', 'cat', { critical: true }), 'ALWAYS');
    await eventually(() => evening.counters.entriesDone === 4, 'every entry done');

    // the critical one went at once; the others did not
    await eventually(() => arrived('cat').includes('q1_4-0'), 'the critical push sent in quiet hours');
    expect(evening.counters).toMatchObject({ deferredQuietHours: 2, skippedPreference: 1 });
    // both due at 07:00 Paris: the retry set's scores
    const deviceOf = async (user: string): Promise<string> => (await r.devices.list('acme', user))[0]?.id ?? '';
    expect(await r.redis.zscore(set, `acme/q1_1-0/${await deviceOf('ann')}`)).toBe(String(morning));
    expect(await r.redis.zscore(set, `acme/q1_2-0/${await deviceOf('bob')}`)).toBe(String(morning));
    expect(await r.redis.zcard(set)).toBe(2);
    // the marker says retry:1, and outlives the wait by PUSH_DEDUP_TTL_SECONDS (24 h), so the morning's claim finds it
    const marker = r.keys.sendMarker('acme', 'q1_1-0', await deviceOf('ann'));
    expect(await r.redis.get(marker)).toBe('retry:1');
    expect(await r.redis.pttl(marker)).toBeGreaterThan(morning - now + 86_400_000 - 60_000);
    expect(pushEvents(ledger, 'q1_1-0').map((event) => [event.status, event.nextAttemptAt, event.detail, event.attempt])).toEqual([
      ['retry', morning, 'deferred: quiet hours until 2026-12-07T06:00:00.000Z', undefined],
    ]);
    expect(pushEvents(ledger, 'q1_3-0').map((event) => event.status)).toEqual(['skipped']);
    expect(pushEvents(ledger, 'q1_3-0')[0]?.detail).toMatch(/ttl passes .* within the user's quiet hours/);

    // an hour later, still quiet: through 25 polls of the retry set, nothing is sent
    now += 3_600_000;
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect([arrived('ann'), arrived('bob'), arrived('cat')]).toEqual([[], [], ['q1_4-0']]);
    expect(await r.redis.zcard(set)).toBe(2);

    // bob mutes news for his webhook while his push waits; the worker stops for the night
    await store.set('acme', 'bob', 'news', 'WEBHOOK', false);
    await evening.stop();

    // 07:00:01 in Paris, another worker: ann's push goes, once; bob's is refused now
    now = morning + 1000;
    const day = await r.startWorker(webhook, { ...options, consumer: 'day' });
    await eventually(async () => (await r.redis.zcard(set)) === 0 && day.load().retriesHeld === 0, 'the deferred pushes decided');
    expect(arrived('ann')).toEqual(['q1_1-0']);
    expect(arrived('bob')).toEqual([]);
    expect(pushEvents(ledger, 'q1_1-0').map((event) => `${event.status}${event.attempt === undefined ? '' : `#${event.attempt}`}`)).toEqual(['retry', 'queued#1', 'accepted#1']);
    expect(pushEvents(ledger, 'q1_2-0').map((event) => [event.status, event.detail])).toEqual([
      ['retry', 'deferred: quiet hours until 2026-12-07T06:00:00.000Z'],
      ['skipped', 'refused by preference: category "news" is off for WEBHOOK'],
    ]);
    expect(day.counters).toMatchObject({ sent: 1, skippedPreference: 1, deferredQuietHours: 0, failed: 0, retried: 0 });
    // nothing more comes: the entries were acknowledged, the set is empty, and the markers say done
    expect(await r.backlog()).toBe(0);
    expect(duplicates(hooks.requests.filter((request) => request.path.startsWith('/qh1/')).map((request) => request.body.toString()))).toEqual({});
    await r.stopAll();
  });
});
