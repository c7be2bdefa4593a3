/**
 * An operator can see the push worker: the compiled worker (`node dist/main.js push`,
 * production, sending for real) on a real Redis, pushing to local servers that speak the
 * providers' protocols (a webhook receiver, a receiver that never answers, the FCM
 * stand-in), scraped on its `METRICS_PORT` and read from its pino JSON on stdout.
 *
 * One notification per user of tenant `acme`, each user with one device that answers one
 * way: 204 (sent), 410 (gone: removed), 503 then 204 (retried, then sent), 429 for good
 * (rate-limited, dead-lettered), no answer (timed out twice, dead-lettered, its circuit
 * open), an internal address the worker may not reach (refused, dead-lettered), and an
 * FCM token FCM calls `UNREGISTERED`, an APNs token APNs answers 410, and a Web Push
 * subscription its push service answers 410. Each metric family moves exactly as the outcomes
 * say, by device kind and reason; while the worker holds the hanging push (it holds one
 * entry at a time), the stream's unread and pending entries and their ages show; each
 * outcome is one debug line with its ids, kind, attempt and time; the summary at info
 * adds up to the same counts, and is not written while nothing happens.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCidr } from '../../../src/config/networks.js';
import { createDeadLetters } from '../../../src/push/dead-letters.js';
import { createDeviceStore } from '../../../src/push/devices.js';
import { createPushKeys } from '../../../src/push/keys.js';
import { createNetworkPolicy } from '../../../src/push/network-policy.js';
import { createPushQueue } from '../../../src/push/queue.js';
import webPush from 'web-push';
import { startApnsStandIn, type ApnsStandIn } from '../../support/apns-server.js';
import { createBrowserSubscription, startFcmStandIn, startHangingReceiver, startHttpRecorder, type FcmStandIn, type HangingReceiver, type HttpRecorder } from '../../support/push-servers.js';
import { eventually } from '../../support/push-worker.js';
import { startHeraldProcess, stopAllProcesses, type HeraldProcess } from '../../support/process.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';

const WEBHOOK_SECRET = `whsec_${Buffer.alloc(32, 5).toString('base64')}`;
const SUMMARY_MS = 500;
/** An APNs device token (hex) the APNs stand-in answers 410 Unregistered. */
const DELETED_APP = 'de1e7ed0'.repeat(8);
const SECRET_TEXT = 'the text of a notification is never logged';
const keys = createPushKeys('herald');

let redis: RedisServer;
let hooks: HttpRecorder;
let hanging: HangingReceiver;
let fcm: FcmStandIn;
let apns: ApnsStandIn;
let worker: HeraldProcess;

beforeAll(async () => {
  [redis, hooks, hanging, fcm, apns] = await Promise.all([startRedisServer(), startHttpRecorder(), startHangingReceiver(), startFcmStandIn(), startApnsStandIn()]);
  let flaky = 0;
  hooks.answer = (request) => {
    if (request.path === '/gone' || request.path === '/push-service/gone') return { status: 410 };
    if (request.path === '/busy') return { status: 429 };
    if (request.path === '/flaky') return { status: (flaky += 1) === 1 ? 503 : 204 };
    return { status: 204 };
  };
  fcm.unregistered.add('uninstalled');
  apns.cues.set(DELETED_APP, [{ status: 410, reason: 'Unregistered' }]);
  const vapid = webPush.generateVAPIDKeys();
  const file = join(mkdtempSync(join(tmpdir(), 'herald-ops-')), 'service-account.json');
  const { projectId, clientEmail, privateKey } = fcm.serviceAccount;
  writeFileSync(file, JSON.stringify({ type: 'service_account', project_id: projectId, client_email: clientEmail, private_key: privateKey }));
  worker = await startHeraldProcess('push', {
    env: {
      REDIS_URL: redis.url,
      METRICS_PORT: '0',
      LOG_LEVEL: 'debug',
      PUSH_LOG_SUMMARY_MS: String(SUMMARY_MS),
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
      // the receivers listen on 127.0.0.1; 127.0.0.2 stays internal, so refused
      PUSH_ALLOWED_NETWORKS: '127.0.0.1/32',
      PUSH_OFFLINE_GRACE_MS: '0',
      // one entry at a time: while the hanging push is held, the next entry waits unread
      PUSH_CONCURRENCY: '1',
      PUSH_MAX_ATTEMPTS: '2',
      PUSH_RETRY_WINDOW_MS: '100',
      PUSH_RETRY_POLL_MS: '20',
      PUSH_SEND_TIMEOUT_MS: '1500',
      PUSH_CLAIM_IDLE_MS: '20000',
      PUSH_BREAKER_FAILURES: '2',
    },
  });
});
afterAll(async () => {
  await stopAllProcesses();
  await Promise.all([hooks?.close(), hanging?.close(), fcm?.close(), apns?.close()]);
  await redis?.stop();
});

/** The worker's `/metrics` now: each sample's value by its name and labels (the `role` label dropped). */
async function scrape(): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${worker.metricsPort ?? 0}/metrics`)).text();
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line === '') continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    const series = line.slice(0, line.lastIndexOf(' ')).replace(/,?role="push"/, '').replace('{}', '').replace('{,', '{');
    samples.set(series, value);
  }
  return samples;
}

/** The JSON lines the worker wrote so far. */
function logLines(): Array<Record<string, unknown>> {
  return worker
    .output()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

let sequence = 0;
const notification = (to: string) => ({
  id: `${Math.floor(Date.now() / 1000)}_1-${(sequence += 1)}`,
  tenant: 'acme',
  audience: 'USER' as const,
  to,
  text: SECRET_TEXT,
  timestamp: Math.floor(Date.now() / 1000),
  sender: 'ops',
});

describe('the push worker, seen by an operator', () => {
  it('counts each outcome by kind and reason, shows the backlog, logs each outcome and a summary', async () => {
    const client = redis.client();
    // the test registers what the worker may not reach: a store that allows 127.0.0.0/8
    const devices = createDeviceStore({ redis: client, keys, allowInsecureUrls: true, networkPolicy: createNetworkPolicy({ allowedNetworks: [parseCidr('127.0.0.0/8')] }) });
    const queue = createPushQueue({ redis: client, keys });
    const hookPort = new URL(hooks.url).port;
    const registered = {
      alice: await devices.register('acme', 'alice', { kind: 'WEBHOOK', url: `${hooks.url}/ok` }),
      bob: await devices.register('acme', 'bob', { kind: 'WEBHOOK', url: `${hooks.url}/gone` }),
      carol: await devices.register('acme', 'carol', { kind: 'WEBHOOK', url: `${hooks.url}/flaky` }),
      grace: await devices.register('acme', 'grace', { kind: 'WEBHOOK', url: `${hooks.url}/busy` }),
      dave: await devices.register('acme', 'dave', { kind: 'WEBHOOK', url: `http://127.0.0.2:${hookPort}/internal` }),
      erin: await devices.register('acme', 'erin', { kind: 'FCM', token: 'uninstalled' }),
      ivan: await devices.register('acme', 'ivan', { kind: 'APNS', token: DELETED_APP }),
      judy: await devices.register('acme', 'judy', { kind: 'WEB_PUSH', subscription: createBrowserSubscription(`${hooks.url}/push-service/gone`).json }),
      frank: await devices.register('acme', 'frank', { kind: 'WEBHOOK', url: `${hanging.url}/hangs` }),
    };

    // The hanging push first: the worker holds its entry (pending) through its first
    // attempt's timeout, and the next entry waits unread behind it.
    const sent = new Map<string, string>();
    const enqueue = async (user: string): Promise<void> => {
      const queued = notification(user);
      sent.set(user, queued.id);
      await queue.enqueue(queued, 'ALWAYS');
    };
    await enqueue('frank');
    await eventually(() => hanging.received >= 1, 'the hanging push to arrive');
    await enqueue('alice');
    await new Promise((resolve) => setTimeout(resolve, 400));
    const backlog = await scrape();
    const stream = keys.streams[0] ?? '';
    expect(backlog.get(`herald_push_queue_entries{shard="${stream}",state="pending"}`)).toBe(1);
    expect(backlog.get(`herald_push_queue_entries{shard="${stream}",state="unread"}`)).toBe(1);
    expect(backlog.get(`herald_push_queue_oldest_age_seconds{shard="${stream}",state="unread"}`)).toBeGreaterThanOrEqual(0.35);
    expect(backlog.get(`herald_push_queue_oldest_age_seconds{shard="${stream}",state="pending"}`)).toBeGreaterThan(backlog.get(`herald_push_queue_oldest_age_seconds{shard="${stream}",state="unread"}`) ?? 0);

    for (const user of ['bob', 'carol', 'grace', 'dave', 'erin', 'ivan', 'judy']) await enqueue(user);
    // an entry is done once its retries are scheduled: wait for those too (carol sent, grace and frank dead-lettered)
    await eventually(
      async () => {
        const now = await scrape();
        return now.get('herald_push_entries_done_total') === 9 && now.get('herald_push_dead_lettered_total{kind="WEBHOOK"}') === 3 && now.get('herald_push_sent_total{kind="WEBHOOK"}') === 2;
      },
      'all nine entries done and every retry settled',
      30_000,
    );
    expect((await createDeadLetters({ redis: client, keys, queue }).list(10)).map((letter) => letter.user).sort()).toEqual(['dave', 'frank', 'grace']);

    const metrics = await scrape();
    const at = (series: string): number | undefined => metrics.get(series);
    expect(at('herald_push_sent_total{kind="WEBHOOK"}')).toBe(2); // alice, carol's second attempt
    expect(at('herald_push_sent_total{kind="FCM"}')).toBe(0);
    const failed = (kind: string, reason: string): number | undefined => at(`herald_push_failed_total{kind="${kind}",reason="${reason}"}`);
    expect(failed('WEBHOOK', 'unregistered')).toBe(1); // bob's 410
    expect(failed('FCM', 'unregistered')).toBe(1); // erin's UNREGISTERED
    expect(failed('APNS', 'unregistered')).toBe(1); // ivan's 410 Unregistered
    expect(failed('WEB_PUSH', 'unregistered')).toBe(1); // judy's push service's 410
    expect(failed('WEBHOOK', 'provider_error')).toBe(1); // carol's 503
    expect(failed('WEBHOOK', 'rate_limited')).toBe(2); // grace's 429, twice
    expect(failed('WEBHOOK', 'timeout')).toBe(2); // frank's, twice
    expect(failed('WEBHOOK', 'refused')).toBe(1); // dave's internal address, never tried
    expect(failed('WEBHOOK', 'invalid')).toBe(0);
    expect(at('herald_push_devices_removed_total{kind="WEBHOOK"}')).toBe(1);
    expect(at('herald_push_devices_removed_total{kind="FCM"}')).toBe(1);
    expect(at('herald_push_devices_removed_total{kind="APNS"}')).toBe(1);
    expect(at('herald_push_devices_removed_total{kind="WEB_PUSH"}')).toBe(1);
    expect(at('herald_push_retried_total{kind="WEBHOOK"}')).toBe(3); // carol, grace, frank once each
    expect(at('herald_push_dead_lettered_total{kind="WEBHOOK"}')).toBe(3); // grace, frank, dave
    expect(at('herald_push_refused_total')).toBe(1);
    // frank's receiver failed twice in a row: its circuit is open, named
    expect(at(`herald_push_circuit{destination="acme ${hanging.url}",state="open"}`)).toBe(1);
    expect(at('herald_push_breakers{state="open"}')).toBe(1);
    // everything done: nothing waits
    expect(at(`herald_push_queue_entries{shard="${stream}",state="pending"}`)).toBe(0);
    expect(at(`herald_push_queue_entries{shard="${stream}",state="unread"}`)).toBe(0);
    expect(at(`herald_push_queue_oldest_age_seconds{shard="${stream}",state="pending"}`)).toBe(0);
    for (const gone of ['bob', 'erin', 'ivan', 'judy']) expect(await devices.list('acme', gone)).toEqual([]);

    // each outcome at debug: its tenant, notification, device, kind, outcome, attempt and time
    const outcomes = logLines().filter((line) => typeof line['outcome'] === 'string');
    const outcomeOf = (user: keyof typeof registered): Array<Record<string, unknown>> => outcomes.filter((line) => line['device'] === registered[user].id);
    expect(outcomeOf('bob')).toEqual([
      expect.objectContaining({ level: 20, tenant: 'acme', notification: sent.get('bob'), kind: 'WEBHOOK', outcome: 'unregistered', attempt: 1, reason: 'webhook answered 410 Gone', ms: expect.any(Number) }),
    ]);
    expect(outcomeOf('carol').map((line) => [line['outcome'], line['attempt']])).toEqual([['provider_error', 1], ['sent', 2]]);
    expect(outcomeOf('frank').map((line) => [line['outcome'], line['attempt']])).toEqual([['timeout', 1], ['timeout', 2], ['dead_lettered', 2]]);
    expect(outcomeOf('dave').map((line) => line['outcome'])).toEqual(['refused', 'dead_lettered']);
    expect(outcomeOf('erin')).toEqual([expect.objectContaining({ kind: 'FCM', outcome: 'unregistered', notification: sent.get('erin') })]);
    expect(outcomeOf('frank')[0]?.['ms']).toBeGreaterThanOrEqual(1400); // it waited out the send timeout

    // the summaries at info add up to the same counts, with the stream's lag
    await new Promise((resolve) => setTimeout(resolve, 2 * SUMMARY_MS));
    const summaries = logLines().filter((line) => typeof line['msg'] === 'string' && (line['msg'] as string).startsWith('push: in the last'));
    const total = (field: string): number => summaries.reduce((sum, line) => sum + Number(line[field] ?? 0), 0);
    expect(summaries.every((line) => line['level'] === 30 && typeof line['pending'] === 'number')).toBe(true);
    expect({ sent: total('sent'), failed: total('failed'), retried: total('retried'), deadLettered: total('deadLettered'), devicesRemoved: total('devicesRemoved') }).toEqual({
      sent: 2,
      failed: 10,
      retried: 3,
      deadLettered: 3,
      devicesRemoved: 4,
    });
    // nothing happens for four summary periods: no summary is written
    const before = summaries.length;
    await new Promise((resolve) => setTimeout(resolve, 4 * SUMMARY_MS));
    expect(logLines().filter((line) => typeof line['msg'] === 'string' && (line['msg'] as string).startsWith('push: in the last'))).toHaveLength(before);
    expect(worker.output()).not.toContain(SECRET_TEXT);
  });
});
