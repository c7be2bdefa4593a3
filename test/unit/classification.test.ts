/**
 * `category` and `critical` on the publish path: checked at the edge (errors name the
 * field), carried in the broker's body and the push entry only when set, so a
 * notification without them is encoded byte for byte as before.
 */
import { describe, expect, it } from 'vitest';
import type { Principal } from '../../src/auth/index.js';
import type { Broker, PublishRequest, PublishResult } from '../../src/broker/types.js';
import { decodeNotification, encodeNotification } from '../../src/common/notification.js';
import { createNamer } from '../../src/names/index.js';
import { decodePushEntry, encodePushEntry, type PushNotification } from '../../src/push/entry.js';
import type { PushQueue } from '../../src/push/queue.js';
import { createSender, parseClassification } from '../../src/core/send.js';

const publisher: Principal = { name: 'billing', tenant: 'acme', stores: [], scopes: new Set(['notifications:publish']), expiresAt: Date.now() + 3_600_000 };

function recordingSender() {
  const payloads: string[] = [];
  const pushed: PushNotification[] = [];
  const broker = {
    publish: (request: PublishRequest): Promise<PublishResult> => {
      payloads.push(request.payload);
      return Promise.resolve({ id: 'e1_1-1', receivedUsers: 0, duplicate: false });
    },
  } as unknown as Broker;
  const pushQueue: PushQueue = {
    enqueue: (notification) => {
      pushed.push(notification);
      return Promise.resolve('1-0');
    },
    add: () => Promise.resolve('1-0'),
    scripted: () => undefined,
  };
  const sender = createSender({ broker, namer: createNamer('herald'), maxTextLength: 100, idempotencyWindowMs: 60_000, pushQueue });
  return { sender, payloads, pushed };
}

describe('category and critical', () => {
  it('leave a notification without them encoded exactly as before', async () => {
    const { sender, payloads, pushed } = recordingSender();
    await sender.send(publisher, { to: 'ann', text: 'hi', critical: false });
    const payload = payloads[0] ?? '';
    const body = JSON.parse(payload) as Record<string, unknown>;
    expect(payload).toBe(JSON.stringify({ text: 'hi', timestamp: body['timestamp'], audience: 'USER', sender: 'billing' }));
    expect(Object.keys(pushed[0] ?? {})).not.toContain('category');
    expect(Object.keys(pushed[0] ?? {})).not.toContain('critical');
  });

  it('travel in the body, the decoded notification and the push entry when set', async () => {
    const { sender, payloads, pushed } = recordingSender();
    await sender.send(publisher, { to: 'ann', text: 'hi', category: 'billing.invoice', critical: true });
    const decoded = decodeNotification('e1_1-1', payloads[0] ?? '');
    expect(decoded).toMatchObject({ category: 'billing.invoice', critical: true, text: 'hi' });
    const notification = pushed[0];
    expect(notification).toMatchObject({ category: 'billing.invoice', critical: true });
    const entry = decodePushEntry(encodePushEntry({ notification: notification!, policy: 'ALWAYS', target: { kind: 'user', user: 'ann' }, queuedAt: 1 }));
    expect(entry?.notification).toMatchObject({ category: 'billing.invoice', critical: true });
  });

  it.each([
    [{ category: 'has space' }, /category "has space" may only hold/],
    [{ category: '' }, /category must not be empty/],
    [{ category: 7 }, /category must be a string/],
    [{ critical: 'yes' }, /critical must be a boolean/],
  ])('refuses %o naming the field', (request, message) => {
    expect(() => parseClassification(request)).toThrow(message);
  });

  it('names the index of a bad one in a batch, and sends none', async () => {
    const { sender, payloads } = recordingSender();
    await expect(sender.sendBatch(publisher, [{ to: 'ann', text: 'a' }, { to: 'ann', text: 'b', category: 'a b' }])).rejects.toThrow(/notification 1: category/);
    expect(payloads).toEqual([]);
  });

  it('decodes a body whose category or critical is malformed without them', () => {
    const raw = encodeNotification({ text: 't', timestamp: 1, audience: 'USER', sender: 's' }).replace('}', ',"category":5,"critical":"yes"}');
    expect(decodeNotification('e1_1-1', raw)).toEqual({ id: 'e1_1-1', text: 't', timestamp: 1, audience: 'USER', sender: 's' });
  });
});
