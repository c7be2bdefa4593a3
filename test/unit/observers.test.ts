/**
 * The observer map over a broker (the in-process one, wrapped in a spy that records and
 * can hold back SUBSCRIBE and UNSUBSCRIBE): one SUBSCRIBE per channel however many
 * observers, piggybacking on one in flight, the last one out unsubscribing, commands of
 * one channel never interleaved, one observer's fault costing the others nothing. The
 * brokers' own side of it (a SUBSCRIBE is one in Redis, NUMSUB) is the broker contract's.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { BrokerUnavailableError } from '../../src/common/failures.js';
import {
  type Broker,
  type ChannelEvents,
  type HistoryAfter,
  type HistoryPage,
  type MessageHandler,
  type MarkReadRequest,
  type MarkReadResult,
  type PublishRequest,
  type PublishResult,
} from '../../src/broker/types.js';
import type { Destination } from '../../src/names/index.js';
import type { Cursor, ReadPosition } from '../../src/common/cursor.js';
import { encodeNotification, type Notification } from '../../src/common/notification.js';
import { ObserverMap, type Observer } from '../../src/core/observers.js';
import { channels, createTestBroker, stopAll, waitFor } from '../support/herald.js';

afterAll(stopAll);

const TENANT_KEY = channels.tenantKey('acme');

/** A user destination no other test uses. */
const freshDestination = (): Destination => channels.destination('acme', 'USER', `u-${randomUUID().slice(0, 8)}`);

const publish = (broker: Broker, destination: Destination, payload: string): Promise<PublishResult> =>
  broker.publish({ destination, tenantKey: TENANT_KEY, payload });

/** How many SUBSCRIBEs of `channel` are standing: those sent minus the UNSUBSCRIBEs. */
const subscriptions = (spy: SpyBroker, channel: string): number => spy.count('subscribe', channel) - spy.count('unsubscribe', channel);

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve: () => void = () => undefined;
  const promise = new Promise<void>((settle) => {
    resolve = settle;
  });
  return { promise, resolve };
}

/** One turn of the event loop: whatever microtasks were going to settle have settled. */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * A spy around a real broker: every call goes through to it; subscribe and unsubscribe
 * calls are recorded, and can be held back (still in flight) until a gate opens.
 */
class SpyBroker implements Broker {
  readonly calls: string[] = [];
  readonly hold: { subscribe?: Promise<void>; unsubscribe?: Promise<void> } = {};
  /** When set, every SUBSCRIBE is refused with it, as a broker that cannot reach its backend does. */
  refuse: Error | undefined;
  readonly #inner: Broker;

  constructor(inner: Broker) {
    this.#inner = inner;
  }

  /** How many times `command` was called for `channel`. */
  count(command: 'subscribe' | 'unsubscribe', channel: string): number {
    return this.calls.filter((call) => call === `${command} ${channel}`).length;
  }
  listen(sink: MessageHandler, events?: ChannelEvents): void {
    this.#inner.listen(sink, events);
  }
  async subscribe(channel: string): Promise<void> {
    this.calls.push(`subscribe ${channel}`);
    await this.hold.subscribe;
    if (this.refuse) throw this.refuse;
    return this.#inner.subscribe(channel);
  }
  async unsubscribe(channel: string): Promise<void> {
    this.calls.push(`unsubscribe ${channel}`);
    await this.hold.unsubscribe;
    return this.#inner.unsubscribe(channel);
  }
  publish(request: PublishRequest): Promise<PublishResult> {
    return this.#inner.publish(request);
  }
  readAfter(request: { tenantKey: string; streams: readonly string[]; after: ReadPosition; limit: number }): Promise<HistoryAfter> {
    return this.#inner.readAfter(request);
  }
  readPage(request: { tenantKey: string; streams: readonly string[]; before: Cursor | undefined; limit: number }): Promise<HistoryPage> {
    return this.#inner.readPage(request);
  }
  markRead(request: MarkReadRequest): Promise<MarkReadResult> {
    return this.#inner.markRead(request);
  }
  signal(channel: string, id: string, payload: string): Promise<void> {
    return this.#inner.signal(channel, id, payload);
  }
  readPosition(key: string): Promise<Cursor | undefined> {
    return this.#inner.readPosition(key);
  }
  isReady(): boolean {
    return this.#inner.isReady();
  }
  close(): Promise<void> {
    return this.#inner.close();
  }
}

/** An observer that records what it is given and answers `accepts`. */
function recordingObserver(accepts = true): Observer & { readonly got: Notification[] } {
  const got: Notification[] = [];
  return {
    got,
    notify: (notification) => {
      got.push(notification);
      return accepts;
    },
  };
}

const notification = (text: string) => ({ text, timestamp: 1_700_000_000, audience: 'USER', sender: 'billing' }) as const;
const notify = (broker: Broker, destination: Destination, text: string): Promise<PublishResult> =>
  publish(broker, destination, encodeNotification(notification(text)));

describe('ObserverMap', () => {
  async function observerMap() {
    const subscribeSide = await createTestBroker();
    const publisher = subscribeSide.broker;
    const spy = new SpyBroker(subscribeSide.broker);
    const warnings: string[] = [];
    const map = new ObserverMap(spy, { logger: { warn: (...args: unknown[]) => warnings.push(args.join(' ')) } });
    return { map, spy, publisher, subscribeSide, warnings };
  }

  it('subscribes a channel once for its first observer, not again for the second', async () => {
    const { map, spy } = await observerMap();
    const { channel } = freshDestination();

    await map.observe([channel], recordingObserver());
    expect(spy.count('subscribe', channel)).toBe(1);
    expect(subscriptions(spy, channel)).toBe(1);

    await map.observe([channel], recordingObserver());
    expect(spy.count('subscribe', channel)).toBe(1);
    expect(map.observerCount(channel)).toBe(2);
    expect(map.channelCount).toBe(1);
    expect(subscriptions(spy, channel)).toBe(1);
  });

  it('piggybacks on a SUBSCRIBE in flight, and resolves nobody before it is confirmed', async () => {
    const { map, spy, publisher } = await observerMap();
    const destination = freshDestination();
    const { channel } = destination;
    const gate = deferred();
    spy.hold.subscribe = gate.promise;
    const settled: string[] = [];
    const observe = (observer: Observer, name: string) =>
      map.observe([channel], observer).then((observation) => {
        settled.push(name);
        return observation;
      });
    const observers = [recordingObserver(), recordingObserver(), recordingObserver()] as const;

    // two at once, without awaiting in between
    const pending = [observe(observers[0], 'first'), observe(observers[1], 'second')];
    await waitFor(() => spy.count('subscribe', channel) === 1, 'the SUBSCRIBE to be in flight');
    // and one more while it is still in flight
    pending.push(observe(observers[2], 'third'));
    await turn();
    expect(settled).toEqual([]);
    expect(map.observerCount(channel)).toBe(3);
    expect(spy.count('subscribe', channel)).toBe(1);

    gate.resolve();
    await Promise.all(pending);
    expect(spy.count('subscribe', channel)).toBe(1);
    expect(subscriptions(spy, channel)).toBe(1);
    expect((await notify(publisher, destination, 'to three')).receivedUsers).toBe(3);
    for (const observer of observers) expect(observer.got.map(({ text }) => text)).toEqual(['to three']);
  });

  it('delivers each notification, decoded, to every observer and counts those that took it', async () => {
    const { map, publisher } = await observerMap();
    const destination = freshDestination();
    const taking = [recordingObserver(), recordingObserver()];
    const behind = recordingObserver(false); // ended, or too far behind
    for (const observer of [...taking, behind]) await map.observe([destination.channel], observer);

    const result = await notify(publisher, destination, 'hello');
    expect(result.receivedUsers).toBe(2);
    for (const observer of [...taking, behind]) expect(observer.got).toEqual([{ id: result.id, ...notification('hello') }]);
  });

  it('an observer that throws costs the others nothing, and is not counted', async () => {
    const { map, publisher, warnings } = await observerMap();
    const destination = freshDestination();
    const before = recordingObserver();
    const after = recordingObserver();
    const broken: Observer = {
      notify: () => {
        throw new Error('broken observer');
      },
    };
    for (const observer of [before, broken, after]) await map.observe([destination.channel], observer);

    expect((await notify(publisher, destination, 'still delivered')).receivedUsers).toBe(2);
    expect([before.got.length, after.got.length]).toEqual([1, 1]);
    expect(warnings).toEqual([`herald: an observer of ${destination.channel} failed: broken observer`]);
  });

  it('observes each of several channels once, however often it is named', async () => {
    const { map, spy, publisher } = await observerMap();
    const user = freshDestination();
    const company = freshDestination();
    const observer = recordingObserver();
    const observation = await map.observe([user.channel, company.channel, user.channel], observer);
    expect([spy.count('subscribe', user.channel), spy.count('subscribe', company.channel)]).toEqual([1, 1]);
    expect(map.observerCount(user.channel)).toBe(1);

    expect((await notify(publisher, user, 'to user')).receivedUsers).toBe(1);
    expect((await notify(publisher, company, 'to company')).receivedUsers).toBe(1);
    expect(observer.got.map(({ text }) => text)).toEqual(['to user', 'to company']);

    await observation.release();
    expect([spy.count('unsubscribe', user.channel), spy.count('unsubscribe', company.channel)]).toEqual([1, 1]);
    expect(map.channelCount).toBe(0);
  });

  it('unsubscribes exactly once, when the last observer leaves', async () => {
    const { map, spy, publisher } = await observerMap();
    const destination = freshDestination();
    const { channel } = destination;
    const first = recordingObserver();
    const second = recordingObserver();
    const firstObservation = await map.observe([channel], first);
    const secondObservation = await map.observe([channel], second);
    expect(subscriptions(spy, channel)).toBe(1);

    await firstObservation.release();
    await firstObservation.release();
    expect(spy.count('unsubscribe', channel)).toBe(0);
    expect(map.observerCount(channel)).toBe(1);
    expect(subscriptions(spy, channel)).toBe(1);
    expect((await notify(publisher, destination, 'to the one left')).receivedUsers).toBe(1);

    await secondObservation.release();
    await secondObservation.release();
    expect(spy.count('unsubscribe', channel)).toBe(1);
    expect(map.observerCount(channel)).toBe(0);
    expect(map.channelCount).toBe(0);
    expect(subscriptions(spy, channel)).toBe(0);

    expect((await notify(publisher, destination, 'to nobody')).receivedUsers).toBe(0);
    expect(first.got.map(({ text }) => text)).toEqual([]);
    expect(second.got.map(({ text }) => text)).toEqual(['to the one left']);
  });

  it('a release racing a new observe on the same channel ends subscribed and delivering', async () => {
    const { map, spy, publisher } = await observerMap();
    const destination = freshDestination();
    const { channel } = destination;
    const leaving = recordingObserver();
    const arriving = recordingObserver();
    const observation = await map.observe([channel], leaving);

    const released = observation.release();
    const observed = map.observe([channel], arriving);
    await Promise.all([released, observed]);

    expect(spy.calls).toEqual([`subscribe ${channel}`, `unsubscribe ${channel}`, `subscribe ${channel}`]);
    expect(map.observerCount(channel)).toBe(1);
    expect(subscriptions(spy, channel)).toBe(1);
    expect((await notify(publisher, destination, 'still here')).receivedUsers).toBe(1);
    expect(arriving.got.map(({ text }) => text)).toEqual(['still here']);
    expect(leaving.got).toEqual([]);
  });

  it('sends no SUBSCRIBE while the UNSUBSCRIBE of the same channel is in flight', async () => {
    const { map, spy, publisher } = await observerMap();
    const destination = freshDestination();
    const { channel } = destination;
    const observation = await map.observe([channel], recordingObserver());
    const gate = deferred();
    spy.hold.unsubscribe = gate.promise;

    const released = observation.release();
    await waitFor(() => spy.count('unsubscribe', channel) === 1, 'the UNSUBSCRIBE to be in flight');
    const arriving = recordingObserver();
    let observed = false;
    const observing = map.observe([channel], arriving).then(() => {
      observed = true;
    });
    await turn();
    expect(spy.count('subscribe', channel)).toBe(1);
    expect(observed).toBe(false);

    gate.resolve();
    await Promise.all([released, observing]);
    expect(spy.calls).toEqual([`subscribe ${channel}`, `unsubscribe ${channel}`, `subscribe ${channel}`]);
    expect(subscriptions(spy, channel)).toBe(1);
    expect((await notify(publisher, destination, 'after the race')).receivedUsers).toBe(1);
    expect(arriving.got.map(({ text }) => text)).toEqual(['after the race']);
  });

  it('drops a malformed message with a warning and counts it as delivered to nobody', async () => {
    const { map, publisher, warnings } = await observerMap();
    const destination = freshDestination();
    const observer = recordingObserver();
    await map.observe([destination.channel], observer);

    expect((await publish(publisher, destination, '{"text": 1}')).receivedUsers).toBe(0);
    expect((await notify(publisher, destination, 'well-formed')).receivedUsers).toBe(1);
    expect(observer.got.map(({ text }) => text)).toEqual(['well-formed']);
    expect(warnings).toEqual([`herald: dropped a malformed notification on ${destination.channel}`]);
  });

  describe('when the broker cannot subscribe', () => {
    it.each<[string, (side: Broker, spy: SpyBroker) => Promise<void>]>([
      [
        'it cannot reach its backend',
        async (_side, spy) => {
          spy.refuse = new BrokerUnavailableError('Redis is unavailable (SUBSCRIBE failed: Connection is closed.)');
        },
      ],
      ['it was closed', (side) => side.close()],
    ])('observe rejects with BrokerUnavailableError and keeps nothing when %s', async (_when, breakIt) => {
      const { map, spy, subscribeSide } = await observerMap();
      await breakIt(subscribeSide.broker, spy);
      const { channel } = freshDestination();
      const other = freshDestination().channel;

      await expect(map.observe([channel, other], recordingObserver())).rejects.toBeInstanceOf(BrokerUnavailableError);
      expect(map.observerCount(channel)).toBe(0);
      expect(map.observerCount(other)).toBe(0);
      expect(map.channelCount).toBe(0);
    });
  });
});

describe('who a notification reached (WHEN_OFFLINE)', () => {
  it('tells onDelivered once per USER or TOPIC notification with the users that took it, and nothing for STORE or COMPANY', async () => {
    const { broker } = await createTestBroker();
    const told: Array<{ id: string; tenant: string; users: readonly string[] }> = [];
    const map = new ObserverMap(broker, { onDelivered: (notification, tenant, users) => told.push({ id: notification.id, tenant, users }) });
    const user = channels.destination('acme', 'USER', 'ann');
    const topic = channels.destination('acme', 'TOPIC', 'jazz');
    const store = channels.destination('acme', 'STORE', 'store-9');
    const taking = (name: string): Observer => ({ owner: { tenant: 'acme', name }, notify: () => true });
    const refusing: Observer = { owner: { tenant: 'acme', name: 'slow' }, notify: () => false };
    const observations = await Promise.all([
      map.observe([user.channel], taking('ann')),
      map.observe([user.channel], taking('ann')), // a second tab of the same user: one name
      map.observe([topic.channel, store.channel], taking('bob')),
      map.observe([topic.channel, store.channel], refusing),
    ]);
    const body = (audience: 'USER' | 'TOPIC' | 'STORE') => encodeNotification({ text: 't', timestamp: 1, audience, sender: 's' });
    const toUser = await publish(broker, user, body('USER'));
    const toTopic = await publish(broker, topic, body('TOPIC'));
    await publish(broker, store, body('STORE'));
    await waitFor(() => told.length >= 2, 'the deliveries');
    await turn();
    expect(told).toEqual([
      { id: toUser.id, tenant: 'acme', users: ['ann'] },
      { id: toTopic.id, tenant: 'acme', users: ['bob'] },
    ]);
    await Promise.all(observations.map((observation) => observation.release()));
  });
});

describe('the live counts for the ledger (onLive)', () => {
  it('tells onLive once per notification how many took it, by transport, with the users of a USER or TOPIC one', async () => {
    const { broker } = await createTestBroker();
    const told: Array<{ id: string; tenant: string; subscriptions: number; transports: object; users: string[] | undefined }> = [];
    const map = new ObserverMap(broker, {
      // The counts object is reused: copied as it is told.
      onLive: (notification, tenant, subscriptions, transports, users) =>
        told.push({ id: notification.id, tenant, subscriptions, transports: { ...transports }, users: users && [...users] }),
    });
    const user = channels.destination('acme', 'USER', 'ann');
    const company = channels.destination('acme', 'COMPANY', 'acme');
    const on = (transport: 'websocket' | 'sse' | 'grpc', name: string): Observer => ({ owner: { tenant: 'acme', name }, transport, notify: () => true });
    const refusing: Observer = { owner: { tenant: 'acme', name: 'slow' }, transport: 'grpc', notify: () => false };
    const observations = await Promise.all([
      map.observe([user.channel, company.channel], on('websocket', 'ann')),
      map.observe([user.channel, company.channel], on('sse', 'ann')),
      map.observe([company.channel], on('grpc', 'bob')),
      map.observe([company.channel], refusing),
    ]);
    const toUser = await publish(broker, user, encodeNotification({ text: 't', timestamp: 1, audience: 'USER', sender: 's' }));
    const toCompany = await publish(broker, company, encodeNotification({ text: 't', timestamp: 1, audience: 'COMPANY', sender: 's' }));
    await waitFor(() => told.length >= 2, 'the deliveries');
    await turn();
    expect(told).toEqual([
      { id: toUser.id, tenant: 'acme', subscriptions: 2, transports: { websocket: 1, sse: 1, grpc: 0 }, users: ['ann'] },
      // A COMPANY notification names nobody: it is not pushed.
      { id: toCompany.id, tenant: 'acme', subscriptions: 3, transports: { websocket: 1, sse: 1, grpc: 1 }, users: undefined },
    ]);
    await Promise.all(observations.map((observation) => observation.release()));
  });

  it('tells nothing of a notification no subscription took', async () => {
    const { broker } = await createTestBroker();
    const told: string[] = [];
    const map = new ObserverMap(broker, { onLive: (notification) => told.push(notification.id) });
    const user = channels.destination('acme', 'USER', 'cid');
    const observation = await map.observe([user.channel], { owner: { tenant: 'acme', name: 'cid' }, transport: 'websocket', notify: () => false });
    const refused = await publish(broker, user, encodeNotification({ text: 't', timestamp: 1, audience: 'USER', sender: 's' }));
    // The in-process broker delivers within the publish: had it told, it would have by now.
    expect(refused.receivedUsers).toBe(0);
    expect(told).toEqual([]);
    await observation.release();
  });
});
