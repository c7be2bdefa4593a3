/**
 * Per-notification push options (`collapseKey`, `ttl`, `priority`): checked at the edge
 * with errors naming the field, carried in the push entry (an older entry has none, a bad
 * stored one is dropped), and each provider's own fields made from them.
 */
import { describe, expect, it } from 'vitest';
import type { Principal } from '../../src/auth/index.js';
import type { Broker, PublishResult } from '../../src/broker/types.js';
import { createSender } from '../../src/core/send.js';
import { createNamer } from '../../src/names/index.js';
import { decodePushEntry, encodePushEntry, type PushEntry, type PushNotification } from '../../src/push/entry.js';
import { MAX_TTL_SECONDS, parsePushOptions, readPushOptions } from '../../src/push/options.js';
import type { PushQueue } from '../../src/push/queue.js';
import { apnsOptionHeaders, apnsPayload } from '../../src/push/senders/apns.js';
import { fcmOptionBlocks, webPushOptionHeaders } from '../../src/push/senders/fcm.js';
import { thrown } from '../support/thrown.js';

const publisher: Principal = { name: 'billing', tenant: 'acme', stores: [], scopes: new Set(['notifications:publish']), expiresAt: Date.now() + 3_600_000 };

describe('parsePushOptions', () => {
  it('takes what is set, and nothing for null or absent fields', () => {
    expect(parsePushOptions({})).toEqual({});
    expect(parsePushOptions({ collapseKey: null, ttl: null, priority: null })).toEqual({});
    expect(parsePushOptions({ collapseKey: 'order-42_status', ttl: 0, priority: 'NORMAL' })).toEqual({ collapseKey: 'order-42_status', ttl: 0, priority: 'NORMAL' });
    expect(parsePushOptions({ ttl: MAX_TTL_SECONDS, priority: 'HIGH' })).toEqual({ ttl: 2_419_200, priority: 'HIGH' });
  });

  it.each([
    [{ collapseKey: '' }, 'collapseKey'],
    [{ collapseKey: 'x'.repeat(33) }, 'collapseKey'],
    [{ collapseKey: 'has space' }, 'collapseKey'],
    [{ collapseKey: 'a.b' }, 'collapseKey'],
    [{ collapseKey: 7 }, 'collapseKey'],
    [{ ttl: -1 }, 'ttl'],
    [{ ttl: 1.5 }, 'ttl'],
    [{ ttl: MAX_TTL_SECONDS + 1 }, 'ttl'],
    [{ ttl: '60' }, 'ttl'],
    [{ priority: 'URGENT' }, 'priority'],
  ])('refuses %o as BAD_USER_INPUT naming %s', (input, field) => {
    const error = thrown(() => parsePushOptions(input));
    expect(error).toMatchObject({ code: 'BAD_USER_INPUT' });
    expect(error.message.startsWith(`${field} `)).toBe(true);
  });
});

describe('the push entry', () => {
  const notification: PushNotification = { id: 'e1_1700000000000-7', tenant: 'acme', audience: 'USER', to: 'bob', text: 'hi', timestamp: 1_700_000_000, sender: 'billing' };
  const entry = (extra: Partial<PushNotification>): PushEntry => ({ notification: { ...notification, ...extra }, policy: 'ALWAYS', target: { kind: 'user', user: 'bob' }, queuedAt: 1 });

  it('carries the options', () => {
    const options = { collapseKey: 'k', ttl: 60, priority: 'HIGH' } as const;
    expect(decodePushEntry(encodePushEntry(entry({ options })))?.notification.options).toEqual(options);
  });

  it('written by an older Herald has none: the providers\' defaults apply', () => {
    const decoded = decodePushEntry(['e', JSON.stringify(entry({}))]);
    expect(decoded?.notification).toEqual(notification);
    expect(decoded?.notification).not.toHaveProperty('options');
  });

  it('drops a stored option that is not valid, keeping the rest and the entry', () => {
    expect(readPushOptions({ collapseKey: 'no spaces allowed', ttl: -5, priority: 'NORMAL' })).toEqual({ priority: 'NORMAL' });
    expect(readPushOptions({ ttl: 'x' })).toBeUndefined();
    expect(readPushOptions('x')).toBeUndefined();
    const raw = JSON.stringify({ ...entry({}), notification: { ...notification, options: { ttl: 1e12 } } });
    expect(decodePushEntry(['e', raw])?.notification).toEqual(notification);
  });
});

describe('sendNotification with options', () => {
  const broker = { publish: (): Promise<PublishResult> => Promise.resolve({ id: 'e1_1-1', receivedUsers: 0, duplicate: false }) } as unknown as Broker;
  const queued: PushNotification[] = [];
  const pushQueue: PushQueue = {
    enqueue: (queuedNotification) => {
      queued.push(queuedNotification);
      return Promise.resolve('1-0');
    },
    add: () => Promise.resolve('1-0'),
    scripted: () => undefined,
  };
  const sender = createSender({ broker, namer: createNamer('herald'), maxTextLength: 100, idempotencyWindowMs: 60_000, pushQueue });

  it('queues them with the notification, and none when none is set', async () => {
    await sender.send(publisher, { to: 'ann', text: 'hi', push: 'ALWAYS', collapseKey: 'score', ttl: 30, priority: 'HIGH' });
    await sender.send(publisher, { to: 'ann', text: 'hi', push: 'ALWAYS' });
    expect(queued.map((queuedNotification) => queuedNotification.options)).toEqual([{ collapseKey: 'score', ttl: 30, priority: 'HIGH' }, undefined]);
  });

  it('refuses a bad one whatever the push policy, and names the notification of a batch', async () => {
    await expect((async () => sender.send(publisher, { to: 'ann', text: 'hi', push: 'NEVER', ttl: -1 }))()).rejects.toMatchObject({ code: 'BAD_USER_INPUT', message: expect.stringMatching(/^ttl /) });
    await expect(sender.sendBatch(publisher, [{ to: 'a', text: 'x' }, { to: 'b', text: 'y', priority: 'LOW' }])).rejects.toMatchObject({
      code: 'BAD_USER_INPUT',
      message: expect.stringMatching(/^notification 1: priority /),
    });
  });
});

describe("each provider's fields", () => {
  const now = Date.UTC(2026, 0, 1);
  const options = { collapseKey: 'score', ttl: 600, priority: 'NORMAL' } as const;

  it('APNs: apns-collapse-id, apns-expiration (Unix seconds; 0 stays 0), apns-priority 10 or 5', () => {
    expect(apnsOptionHeaders(options, now)).toEqual({ 'apns-collapse-id': 'score', 'apns-expiration': String(now / 1000 + 600), 'apns-priority': '5' });
    expect(apnsOptionHeaders({ ttl: 0, priority: 'HIGH' }, now)).toEqual({ 'apns-expiration': '0', 'apns-priority': '10' });
    expect(apnsOptionHeaders(undefined, now)).toEqual({});
  });

  it('FCM v1: android collapse_key, ttl and priority, the apns headers, the webpush headers', () => {
    expect(fcmOptionBlocks(options, now)).toEqual({
      android: { collapse_key: 'score', ttl: '600s', priority: 'NORMAL' },
      apns: { headers: { 'apns-collapse-id': 'score', 'apns-expiration': String(now / 1000 + 600), 'apns-priority': '5' } },
      webpush: { headers: { TTL: '600', Urgency: 'normal', Topic: 'score' } },
    });
    expect(fcmOptionBlocks({ priority: 'HIGH' }, now)).toEqual({ android: { priority: 'HIGH' }, apns: { headers: { 'apns-priority': '10' } }, webpush: { headers: { Urgency: 'high' } } });
    expect(fcmOptionBlocks(undefined, now)).toEqual({});
    expect(webPushOptionHeaders({})).toEqual({});
  });

  it('APNs payload: the alert, and the ids as custom keys', () => {
    const notification: PushNotification = { id: 'e1_1-1', tenant: 'acme', audience: 'TOPIC', to: 'jazz', text: 'new episode', timestamp: 5, sender: 'radio', options };
    expect(apnsPayload({ notification, user: 'ann' })).toEqual({
      aps: { alert: { body: 'new episode' } },
      id: 'e1_1-1',
      tenant: 'acme',
      audience: 'TOPIC',
      to: 'jazz',
      user: 'ann',
      sender: 'radio',
      timestamp: 5,
    });
  });
});
