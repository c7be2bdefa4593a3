/**
 * Property: on the live path — the in-process broker, the observer map, subscriptions
 * opened as a transport opens them, the sender, the preference store and changes told
 * through `Broker.signal` as `setPreference` tells them — every notification each user's
 * subscription got is one its preferences let through at the time it was sent, and every
 * one they let through was delivered, over random users, preference sets, tenant
 * defaults, changes and notifications to USER, STORE and COMPANY.
 */
import { describe, expect, it } from 'vitest';
import type { Principal } from '../../src/auth/index.js';
import { createInProcessBroker } from '../../src/broker/in-process.js';
import type { Notification, SubscriptionItem } from '../../src/common/notification.js';
import { ObserverMap } from '../../src/core/observers.js';
import { createSender } from '../../src/core/send.js';
import type { Sink } from '../../src/core/sink.js';
import { createSubscriptions } from '../../src/core/subscriptions.js';
import { createNamer } from '../../src/names/index.js';
import { CHANNELS } from '../../src/preferences/channels.js';
import { showsInApp } from '../../src/preferences/decide.js';
import { encodePreferencesChange } from '../../src/preferences/preferences.js';
import { createMemoryPreferenceStore } from '../../src/preferences/store.js';
import { seededRandom as random } from '../support/random.js';


const USERS = ['ann', 'bob', 'cy'];
const CATEGORIES = ['promo', 'billing', 'news'];
const hour = 3_600_000;
const principal = (name: string, scopes: string[] = []): Principal => ({ name, tenant: 'acme', stores: ['s1'], scopes: new Set(scopes), expiresAt: Date.now() + hour });

describe('property: every live delivery respects the preferences', () => {
  it.each([1, 2, 3, 4, 5, 6, 7, 8])('holds for random preferences, changes and notifications (seed %i)', async (seed) => {
    const rng = random(seed * 7919 + (Date.now() % 1000));
    const namer = createNamer('herald');
    const broker = createInProcessBroker({ retention: { maxLength: 10_000, maxAgeMs: hour } });
    const observers = new ObserverMap(broker);
    const store = createMemoryPreferenceStore();
    const subscriptions = createSubscriptions({
      observers,
      broker,
      namer,
      maxQueued: 10_000,
      maxBufferedBytes: 1 << 24,
      preferencesOf: (owner) => store.readWithDefaults(owner.tenant, owner.name),
    });
    const sender = createSender({ broker, namer, maxTextLength: 100, idempotencyWindowMs: 60_000 });
    const service = principal('svc', ['notifications:publish']);

    const change = async (user: string): Promise<void> => {
      const preferences = await store.set('acme', user, rng.pick(CATEGORIES), rng.pick(CHANNELS), rng.next() < 0.5);
      await broker.signal(namer.destination('acme', 'USER', user).channel, String(preferences.version), encodePreferencesChange(preferences));
    };
    // Preferences and defaults before anyone subscribes, then more changes while they listen.
    for (let n = 0; n < 6; n++) await change(rng.pick(USERS));
    for (let n = 0; n < 2; n++) await store.setDefault('acme', rng.pick(CATEGORIES), 'IN_APP', rng.next() < 0.5);

    const got = new Map<string, string[]>();
    for (const user of USERS) {
      const texts: string[] = [];
      got.set(user, texts);
      const sink: Sink = {
        deliver: (item: SubscriptionItem) => {
          if ('text' in item) texts.push(item.text);
          return true;
        },
        preload: (items) => texts.push(...items.filter((item): item is Notification => 'text' in item).map((item) => item.text)),
        room: () => Promise.resolve(),
        fail: () => undefined,
        return: () => Promise.resolve(),
      };
      await subscriptions.openInto({ principal: principal(user), userName: user }, () => sink);
    }

    const expected = new Map<string, string[]>(USERS.map((user) => [user, []]));
    for (let n = 0; n < 60; n++) {
      if (rng.next() < 0.15) {
        await change(rng.pick(USERS));
        continue;
      }
      const audience = rng.pick(['USER', 'STORE', 'COMPANY'] as const);
      const to = audience === 'USER' ? rng.pick(USERS) : audience === 'STORE' ? 's1' : 'acme';
      const category = rng.next() < 0.8 ? rng.pick(CATEGORIES) : undefined;
      const critical = rng.next() < 0.1;
      const text = `n${n}`;
      // What each addressee's preferences say now, from the store, not the subscription.
      for (const user of audience === 'USER' ? [to] : USERS) {
        const { preferences, defaults } = await store.readWithDefaults('acme', user);
        if (showsInApp(preferences.categories, defaults, { category, critical })) expected.get(user)?.push(text);
      }
      await sender.send(service, { to, text, audience, category, critical });
    }
    for (const user of USERS) expect(got.get(user), `seed ${seed}, ${user}`).toEqual(expected.get(user));
  });
});
