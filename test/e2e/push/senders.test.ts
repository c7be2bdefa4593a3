/**
 * Each sender against a local server speaking its service's protocol: FCM v1 over HTTP/2
 * with OAuth2 tokens from a JWT-bearer grant, Web Push with VAPID and an encrypted payload
 * the test decrypts, webhooks signed per Standard Webhooks.
 */
import { createPublicKey } from 'node:crypto';
import { decrypt } from 'http_ece';
import jwt from 'jsonwebtoken';
import { Webhook } from 'standardwebhooks';
import webPush from 'web-push';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Device } from '../../../src/push/devices.js';
import { createFcmSender } from '../../../src/push/senders/fcm.js';
import type { PushMessage } from '../../../src/push/senders/types.js';
import { createWebPushSender } from '../../../src/push/senders/web-push.js';
import { createWebhookSender, webhookId } from '../../../src/push/senders/webhook.js';
import { createBrowserSubscription, localNetworkPolicy, startFcmStandIn, startHangingReceiver, startHttpRecorder, type FcmStandIn, type HttpRecorder } from '../../support/push-servers.js';
import { createWaiters } from '../../support/waiters.js';

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
const message: PushMessage = {
  notification: { id: 'e1_1700000000000-7', tenant: 'acme', audience: 'USER', to: 'bob', text: 'Your order shipped', timestamp: 1_700_000_000, sender: 'billing' },
  user: 'bob',
};
const fcmDevice = (token: string): Extract<Device, { kind: 'FCM' }> => ({ kind: 'FCM', token, id: `id-${token}`, registeredAt: 0 });

describe('FCM sender', () => {
  let fcm: FcmStandIn;
  beforeAll(async () => {
    fcm = await startFcmStandIn();
  });
  afterAll(() => fcm.close());
  const sender = (extra: { dryRun?: boolean; maxConnections?: number } = {}) =>
    createFcmSender({ serviceAccount: fcm.serviceAccount, baseUrl: fcm.url, tokenUrl: fcm.tokenUrl, dryRun: false, logger: quiet, networkPolicy: localNetworkPolicy, ...extra });

  it('gets a token with a JWT-bearer grant signed by the service account, and sends the message with it', async () => {
    const fcmSender = sender();
    const granted = fcm.grants.valid;
    const before = fcm.messages.length;
    await expect(fcmSender.send(message, fcmDevice('tok-a'))).resolves.toEqual({ outcome: 'sent', dryRun: false });
    await expect(fcmSender.send(message, fcmDevice('tok-b'))).resolves.toEqual({ outcome: 'sent', dryRun: false });
    await fcmSender.close();
    expect(fcm.grants.problems).toEqual([]);
    expect(fcm.grants.valid - granted).toBe(1); // the token is cached across sends
    const [first] = fcm.messages.slice(before);
    expect(first?.validateOnly).toBe(false);
    expect(first?.body).toEqual({
      message: {
        token: 'tok-a',
        notification: { body: 'Your order shipped' },
        data: { id: 'e1_1700000000000-7', tenant: 'acme', audience: 'USER', to: 'bob', user: 'bob', sender: 'billing', timestamp: '1700000000' },
      },
    });
  });

  it('keeps up to the server\'s stream limit in flight on one HTTP/2 connection, and opens more only past it', async () => {
    const slow = await startFcmStandIn({ delayMs: 50 });
    try {
      const one = createFcmSender({ serviceAccount: slow.serviceAccount, baseUrl: slow.url, tokenUrl: slow.tokenUrl, dryRun: false, logger: quiet, networkPolicy: localNetworkPolicy, maxConnections: 1 });
      await one.send(message, fcmDevice('warm-up')); // token fetched, connection open
      const sends = Array.from({ length: 300 }, (_, i) => one.send(message, fcmDevice(`t${i}`)));
      const outcomes = await Promise.all(sends);
      await one.close();
      expect(outcomes.every((outcome) => outcome.outcome === 'sent')).toBe(true);
      expect(slow.sessions).toBe(1);
      expect(slow.peakStreams).toBe(100); // the limit it announced, reached on the one connection

      const pooled = createFcmSender({ serviceAccount: slow.serviceAccount, baseUrl: slow.url, tokenUrl: slow.tokenUrl, dryRun: false, logger: quiet, networkPolicy: localNetworkPolicy });
      await pooled.send(message, fcmDevice('warm-up-2'));
      const sessionsBefore = slow.sessions;
      await Promise.all(Array.from({ length: 300 }, (_, i) => pooled.send(message, fcmDevice(`p${i}`))));
      await pooled.close();
      expect(slow.sessions - sessionsBefore).toBe(2); // 300 streams at 100 per connection: three connections
    } finally {
      await slow.close();
    }
  });

  it('maps FCM answers: UNREGISTERED is gone, 429 and 5xx retry with Retry-After, 400 fails', async () => {
    const fcmSender = sender();
    fcm.unregistered.add('uninstalled');
    fcm.answer = (m) => {
      if (m.token === 'busy') return { status: 429, headers: { 'retry-after': '7' }, body: { error: { code: 429, status: 'RESOURCE_EXHAUSTED' } } };
      if (m.token === 'down') return { status: 503, body: { error: { code: 503, status: 'UNAVAILABLE' } } };
      if (m.token === 'bad') return { status: 400, body: { error: { code: 400, status: 'INVALID_ARGUMENT' } } };
      return undefined;
    };
    try {
      await expect(fcmSender.send(message, fcmDevice('uninstalled'))).resolves.toEqual({ outcome: 'gone', reason: 'FCM answered 404 UNREGISTERED' });
      await expect(fcmSender.send(message, fcmDevice('busy'))).resolves.toEqual({ outcome: 'retry', reason: 'FCM answered 429 RESOURCE_EXHAUSTED', retryAfterMs: 7000 });
      await expect(fcmSender.send(message, fcmDevice('down'))).resolves.toEqual({ outcome: 'retry', reason: 'FCM answered 503 UNAVAILABLE', endpointDown: true });
      await expect(fcmSender.send(message, fcmDevice('bad'))).resolves.toEqual({ outcome: 'failed', reason: 'FCM answered 400 INVALID_ARGUMENT' });
    } finally {
      fcm.answer = () => undefined;
      await fcmSender.close();
    }
  });

  it('asks FCM to validate only in dry-run', async () => {
    const dry = sender({ dryRun: true });
    const before = fcm.messages.length;
    await expect(dry.send(message, fcmDevice('dry'))).resolves.toEqual({ outcome: 'sent', dryRun: true });
    await dry.close();
    expect(fcm.messages.slice(before).map((m) => m.validateOnly)).toEqual([true]);
  });

  it('retries, without throwing, when FCM cannot be reached', async () => {
    const unreachable = createFcmSender({ serviceAccount: fcm.serviceAccount, baseUrl: 'http://127.0.0.1:1', tokenUrl: fcm.tokenUrl, dryRun: false, logger: quiet, networkPolicy: localNetworkPolicy });
    const outcome = await unreachable.send(message, fcmDevice('x'));
    await unreachable.close();
    expect(outcome).toMatchObject({ outcome: 'retry', reason: expect.stringMatching(/^FCM: .*ECONNREFUSED/) });
  });
});

describe('Web Push sender', () => {
  let endpoint: HttpRecorder;
  const vapid = { subject: 'mailto:ops@example.com', ...webPush.generateVAPIDKeys() };
  beforeAll(async () => {
    endpoint = await startHttpRecorder();
  });
  afterAll(() => endpoint.close());

  it('sends a VAPID-signed push whose payload the browser decrypts', async () => {
    const browser = createBrowserSubscription(`${endpoint.url}/push/abc`);
    const sender = createWebPushSender({ vapid, dryRun: false, logger: quiet, networkPolicy: localNetworkPolicy });
    const device: Extract<Device, { kind: 'WEB_PUSH' }> = { kind: 'WEB_PUSH', subscription: browser.json, id: 'wp1', registeredAt: 0 };
    await expect(sender.send(message, device)).resolves.toEqual({ outcome: 'sent', dryRun: false });
    const [request] = endpoint.requests;
    expect(request?.path).toBe('/push/abc');
    expect(request?.headers['content-encoding']).toBe('aes128gcm');
    const plain = decrypt(request?.body ?? Buffer.alloc(0), { version: 'aes128gcm', privateKey: browser.keyPair, authSecret: browser.authSecret });
    expect(JSON.parse(plain.toString('utf8'))).toEqual({
      type: 'notification', id: message.notification.id, text: 'Your order shipped', timestamp: 1_700_000_000,
      audience: 'USER', to: 'bob', user: 'bob', tenant: 'acme', sender: 'billing',
    });
    // RFC 8292: vapid t=<ES256 JWT for the endpoint's origin>, k=<the application server key>
    const match = /^vapid t=([^,]+), k=(.+)$/.exec(String(request?.headers['authorization']));
    expect(match?.[2]).toBe(vapid.publicKey);
    const raw = Buffer.from(vapid.publicKey, 'base64url');
    const key = createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: raw.subarray(1, 33).toString('base64url'), y: raw.subarray(33).toString('base64url') }, format: 'jwk' });
    expect(jwt.verify(match?.[1] ?? '', key, { algorithms: ['ES256'] })).toMatchObject({ aud: endpoint.url, sub: vapid.subject });
  });

  it('treats 404/410 as gone and 429 as retry after Retry-After; dry-run sends nothing', async () => {
    const browser = createBrowserSubscription(`${endpoint.url}/push/gone`);
    const device: Extract<Device, { kind: 'WEB_PUSH' }> = { kind: 'WEB_PUSH', subscription: browser.json, id: 'wp2', registeredAt: 0 };
    const sender = createWebPushSender({ vapid, dryRun: false, logger: quiet, networkPolicy: localNetworkPolicy });
    endpoint.answer = () => ({ status: 410 });
    await expect(sender.send(message, device)).resolves.toEqual({ outcome: 'gone', reason: 'push service answered 410' });
    endpoint.answer = () => ({ status: 429, headers: { 'retry-after': '3' } });
    await expect(sender.send(message, device)).resolves.toEqual({ outcome: 'retry', reason: 'push service answered 429', retryAfterMs: 3000 });
    endpoint.answer = () => ({ status: 201 });
    const before = endpoint.requests.length;
    const dry = createWebPushSender({ vapid, dryRun: true, logger: quiet, networkPolicy: localNetworkPolicy });
    await expect(dry.send(message, device)).resolves.toEqual({ outcome: 'sent', dryRun: true });
    expect(endpoint.requests.length).toBe(before);
  });
});

describe('webhook sender', () => {
  let receiver: HttpRecorder;
  const secret = `whsec_${Buffer.alloc(32, 5).toString('base64')}`;
  beforeAll(async () => {
    receiver = await startHttpRecorder();
  });
  afterAll(() => receiver.close());

  it('signs per Standard Webhooks, with a webhook-id stable across attempts', async () => {
    const sender = createWebhookSender({ secret, dryRun: false, logger: quiet, networkPolicy: localNetworkPolicy });
    const device: Extract<Device, { kind: 'WEBHOOK' }> = { kind: 'WEBHOOK', url: `${receiver.url}/hooks/herald`, id: 'wh1', registeredAt: 0 };
    receiver.answer = () => ({ status: 503 });
    await expect(sender.send(message, device)).resolves.toEqual({ outcome: 'retry', reason: 'webhook answered 503', endpointDown: true });
    receiver.answer = () => ({ status: 204 });
    await expect(sender.send(message, device)).resolves.toEqual({ outcome: 'sent', dryRun: false });
    const [first, second] = receiver.requests;
    const verifier = new Webhook(secret);
    for (const request of [first, second]) {
      const headers = Object.fromEntries(Object.entries(request?.headers ?? {}).map(([name, value]) => [name, String(value)]));
      expect(verifier.verify(request?.body.toString('utf8') ?? '', headers)).toEqual({
        type: 'notification', id: message.notification.id, text: 'Your order shipped', timestamp: 1_700_000_000,
        audience: 'USER', to: 'bob', user: 'bob', tenant: 'acme', sender: 'billing',
      });
    }
    expect(first?.headers['webhook-id']).toBe(webhookId(message, device));
    expect(second?.headers['webhook-id']).toBe(first?.headers['webhook-id']);
    // another device of the same user gets another id
    expect(webhookId(message, { id: 'wh2' })).not.toBe(webhookId(message, device));
    // a forged body fails verification
    const headers = Object.fromEntries(Object.entries(first?.headers ?? {}).map(([name, value]) => [name, String(value)]));
    expect(() => verifier.verify('{"text":"forged"}', headers)).toThrow();
  });

  it('gives up on a receiver that never answers after its timeout, closing the connection: a retry that counts against the breaker, a 4xx one that does not', async () => {
    const hanging = await startHangingReceiver();
    try {
      const sender = createWebhookSender({ secret, dryRun: false, requestTimeoutMs: 300, logger: quiet, networkPolicy: localNetworkPolicy });
      const device: Extract<Device, { kind: 'WEBHOOK' }> = { kind: 'WEBHOOK', url: `${hanging.url}/hooks/never`, id: 'wh4', registeredAt: 0 };
      const outcomes = await Promise.all([1, 2, 3].map(() => sender.send(message, device)));
      expect(outcomes).toEqual([1, 2, 3].map(() => ({ outcome: 'retry', reason: 'webhook: timed out', endpointDown: true })));
      expect(hanging.received).toBe(3);
      // each request's connection is closed when its send gives up: nothing is held after it
      const waiters = createWaiters();
      hanging.onChange = waiters.wake;
      await waiters.until(() => (hanging.holding === 0 ? true : undefined), 'the receiver to see every connection closed', 10_000, () => `holding ${hanging.holding}`);
    } finally {
      await hanging.close();
    }
    receiver.answer = () => ({ status: 404 });
    const device: Extract<Device, { kind: 'WEBHOOK' }> = { kind: 'WEBHOOK', url: `${receiver.url}/hooks/missing`, id: 'wh5', registeredAt: 0 };
    await expect(createWebhookSender({ secret, dryRun: false, logger: quiet, networkPolicy: localNetworkPolicy }).send(message, device)).resolves.toEqual({ outcome: 'retry', reason: 'webhook answered 404' });
  });

  it('treats 410 as gone and sends nothing in dry-run', async () => {
    const device: Extract<Device, { kind: 'WEBHOOK' }> = { kind: 'WEBHOOK', url: `${receiver.url}/hooks/old`, id: 'wh3', registeredAt: 0 };
    receiver.answer = () => ({ status: 410 });
    await expect(createWebhookSender({ secret, dryRun: false, logger: quiet, networkPolicy: localNetworkPolicy }).send(message, device)).resolves.toEqual({ outcome: 'gone', reason: 'webhook answered 410 Gone' });
    const before = receiver.requests.length;
    await expect(createWebhookSender({ secret, dryRun: true, logger: quiet, networkPolicy: localNetworkPolicy }).send(message, device)).resolves.toEqual({ outcome: 'sent', dryRun: true });
    expect(receiver.requests.length).toBe(before);
  });
});
