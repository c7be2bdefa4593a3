/**
 * `summarize` and `viewOf` (src/ledger/summary.ts): what a support person reads first
 * about one notification, and the part of its ledger that concerns one user.
 */
import { describe, expect, it } from 'vitest';
import type { LedgerEvent } from '../../src/ledger/events.js';
import { summarize, viewOf } from '../../src/ledger/summary.js';

const accepted = (to: string, audience = 'USER'): LedgerEvent => ({ type: 'accepted', at: 1000, publisher: 'billing', audience, to, push: 'ALWAYS' });

describe('summarize', () => {
  it('sums live deliveries over servers and transports', () => {
    const summary = summarize({
      events: [
        accepted('ann'),
        { type: 'live', at: 1010, server: 'a', subscriptions: 2, transports: { websocket: 1, sse: 1 }, users: ['ann'] },
        { type: 'live', at: 1011, server: 'b', subscriptions: 1, transports: { grpc: 1 }, users: ['ann'] },
      ],
      dropped: 0,
    });
    expect(summary.accepted).toMatchObject({ publisher: 'billing', to: 'ann' });
    expect(summary.live).toEqual({ subscriptions: 3, servers: 2, transports: { websocket: 1, sse: 1, grpc: 1 } });
  });

  it("gives each device its last status, its highest attempt and its last reason and detail", () => {
    const summary = summarize({
      events: [
        accepted('ann'),
        { type: 'push', at: 1100, status: 'queued', user: 'ann', device: 'd1', kind: 'FCM' },
        { type: 'push', at: 1200, status: 'failed', user: 'ann', device: 'd1', kind: 'FCM', attempt: 1, reason: 'rate_limited', detail: '429' },
        { type: 'push', at: 1300, status: 'retry', user: 'ann', device: 'd1', kind: 'FCM', attempt: 1, nextAttemptAt: 2000 },
        { type: 'push', at: 1150, status: 'removed', user: 'ann', device: 'd2', kind: 'WEB_PUSH', attempt: 1, reason: 'unregistered', detail: '410' },
        { type: 'push', at: 2100, status: 'accepted', user: 'ann', device: 'd1', kind: 'FCM', attempt: 2 },
      ],
      dropped: 0,
    });
    expect(summary.devices).toEqual([
      { user: 'ann', device: 'd1', kind: 'FCM', status: 'accepted', attempts: 2, lastReason: 'rate_limited', lastDetail: '429', at: 2100 },
      { user: 'ann', device: 'd2', kind: 'WEB_PUSH', status: 'removed', attempts: 1, lastReason: 'unregistered', lastDetail: '410', at: 1150 },
    ]);
  });

  it('orders the timeline by time, events of one time as stored, and names each reader once', () => {
    const summary = summarize({
      events: [
        accepted('ann'),
        { type: 'read', at: 3000, user: 'ann' },
        { type: 'live', at: 1010, server: 'a', subscriptions: 1, transports: { websocket: 1 } },
        { type: 'read', at: 3000, user: 'bob' },
        { type: 'read', at: 4000, user: 'ann' },
      ],
      dropped: 7,
    });
    expect(summary.events.map((event) => `${event.type}@${event.at}`)).toEqual(['accepted@1000', 'live@1010', 'read@3000', 'read@3000', 'read@4000']);
    expect(summary.readBy).toEqual([
      { user: 'ann', at: 3000 },
      { user: 'bob', at: 3000 },
    ]);
    expect(summary.eventsDropped).toBe(7);
  });

  it('makes an empty summary of a timeline whose accepted event was not kept', () => {
    const summary = summarize({ events: [], dropped: 0 });
    expect(summary).toMatchObject({ accepted: undefined, devices: [], readBy: [], live: { subscriptions: 0, servers: 0 } });
  });
});

describe('viewOf: the part that concerns one user', () => {
  const timeline = (to: string, audience = 'USER'): LedgerEvent[] => [
    accepted(to, audience),
    { type: 'live', at: 1010, server: 'a', subscriptions: 2, transports: { websocket: 2 }, users: [to] },
    { type: 'push', at: 1100, status: 'accepted', user: 'ann', device: 'd1', kind: 'FCM', attempt: 1 },
    { type: 'push', at: 1100, status: 'accepted', user: 'bob', device: 'd2', kind: 'FCM', attempt: 1 },
    { type: 'read', at: 1200, user: 'bob' },
  ];

  it('gives the addressee the accepted and live events and their own pushes and reads', () => {
    const view = viewOf({ events: timeline('ann'), dropped: 3 }, { name: 'ann', stores: [] });
    expect(view?.events.map((event) => event.type)).toEqual(['accepted', 'live', 'push']);
    expect(view?.events.every((event) => event.type !== 'push' || event.user === 'ann')).toBe(true);
    // What was dropped may be anyone's.
    expect(view?.dropped).toBe(0);
  });

  it("gives another user named by an event their own part, without the addressee's live delivery", () => {
    const view = viewOf({ events: timeline('ann'), dropped: 0 }, { name: 'bob', stores: [] });
    expect(view?.events.map((event) => event.type)).toEqual(['accepted', 'push', 'read']);
  });

  it('gives nothing to a user it neither addresses nor names', () => {
    expect(viewOf({ events: timeline('ann'), dropped: 0 }, { name: 'cid', stores: ['store-1'] })).toBeUndefined();
  });

  it('gives a store member and anyone in the company the accepted event of a notification to them, but no live counts', () => {
    const store = viewOf({ events: timeline('store-1', 'STORE'), dropped: 0 }, { name: 'cid', stores: ['store-1'] });
    expect(store?.events.map((event) => event.type)).toEqual(['accepted']);
    const company = viewOf({ events: timeline('acme', 'COMPANY'), dropped: 0 }, { name: 'cid', stores: [] });
    expect(company?.events.map((event) => event.type)).toEqual(['accepted']);
  });
});
