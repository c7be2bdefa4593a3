/**
 * The sender's push entries, without Redis: a `WHEN_OFFLINE` notification to a user
 * whose count shows it reached them live queues nothing (the worker would only skip it,
 * for an XADD and a round trip); everything else queues as before.
 */
import { describe, expect, it } from 'vitest';
import type { Principal } from '../../src/auth/index.js';
import type { Broker, PublishRequest, PublishResult } from '../../src/broker/types.js';
import { createNamer } from '../../src/names/index.js';
import type { PushPolicy } from '../../src/push/entry.js';
import type { PushQueue } from '../../src/push/queue.js';
import { createSender } from '../../src/core/send.js';

const publisher: Principal = { name: 'billing', tenant: 'acme', stores: [], scopes: new Set(['notifications:publish']), expiresAt: Date.now() + 3_600_000 };

/** A sender on a broker whose publishes reach `reached` subscriptions, and the push entries it queued. */
function senderReaching(reached: number) {
  const queued: Array<{ to: string; policy: PushPolicy }> = [];
  const broker = {
    publish: (request: PublishRequest): Promise<PublishResult> =>
      Promise.resolve({ id: 'e1_1-1', receivedUsers: request.countDeliveries === false ? undefined : reached, duplicate: false }),
  } as unknown as Broker;
  const pushQueue: PushQueue = {
    enqueue: (notification, policy) => {
      queued.push({ to: notification.to, policy });
      return Promise.resolve('1-0');
    },
    add: () => Promise.resolve('1-0'),
    scripted: () => undefined,
  };
  const sender = createSender({ broker, namer: createNamer('herald'), maxTextLength: 100, idempotencyWindowMs: 60_000, pushQueue });
  return { sender, queued };
}

describe('push entries on the publish path', () => {
  it('queues none for a counted WHEN_OFFLINE notification that reached its user live', async () => {
    const { sender, queued } = senderReaching(2);
    const result = await sender.send(publisher, { to: 'ann', text: 'hi' }, { countDeliveries: true });
    expect(result.receivedUsers).toBe(2);
    expect(queued).toEqual([]);
  });

  it('queues one when the count is 0, when nothing was counted, for ALWAYS and for a topic', async () => {
    const offline = senderReaching(0);
    await offline.sender.send(publisher, { to: 'ann', text: 'hi' }, { countDeliveries: true });
    expect(offline.queued).toEqual([{ to: 'ann', policy: 'WHEN_OFFLINE' }]);

    const live = senderReaching(1);
    await live.sender.send(publisher, { to: 'bob', text: 'hi' }, { countDeliveries: false });
    await live.sender.send(publisher, { to: 'cy', text: 'hi', push: 'ALWAYS' }, { countDeliveries: true });
    await live.sender.send(publisher, { to: 'jazz', text: 'hi', audience: 'TOPIC' }, { countDeliveries: true });
    await live.sender.send(publisher, { to: 'dee', text: 'hi', push: 'NEVER' }, { countDeliveries: true });
    expect(live.queued).toEqual([
      { to: 'bob', policy: 'WHEN_OFFLINE' },
      { to: 'cy', policy: 'ALWAYS' },
      { to: 'jazz', policy: 'WHEN_OFFLINE' },
    ]);
  });
});
