/**
 * The observer map: channel → the live subscriptions of this process that listen on it.
 *
 * Each channel is subscribed in the broker once, however many observers it has: the
 * first observer subscribes it, later ones piggyback (also on a SUBSCRIBE still in
 * flight), the last one to leave unsubscribes it. SUBSCRIBE and UNSUBSCRIBE of one
 * channel run one after another, never interleaved. Knows nothing of WebSocket, SSE or
 * GraphQL: an observer is anything with `deliver`.
 */
import type { Broker, BrokerMessage } from '../broker/types.js';
import { decodeNotification, isReadStatePayload, type Notification, type ReadStateChange } from '../common/notification.js';
import type { HotCounts } from '../metrics/metrics.js';

/** One live subscription, as the map sees it. */
export interface Observer {
  /**
   * Called once per notification on any channel it observes. Returns false when the
   * observer could not take it (it has ended, or fell too far behind). Must not throw.
   */
  deliver(notification: Notification): boolean;
  /**
   * Called when the user's read position moved (a change on the user's channel).
   * Not a notification: it is never in history and is not counted. Must not throw.
   */
  readStateChanged?(change: ReadStateChange): void;
  /**
   * Its channels' connection dropped: notifications may be lost until {@link resync}.
   * Also called for an observer that joins a channel while it is interrupted.
   */
  interrupt?(): void;
  /** Its channels are heard again: history holds whatever was missed since {@link interrupt}. */
  resync?(): void;
  /** The user whose subscription it is, for {@link ObserverMapOptions.onDelivered}. */
  readonly owner?: { readonly tenant: string; readonly name: string } | undefined;
}

/**
 * Told, once per notification to a `USER` or a `TOPIC` (the pushable audiences), which
 * users of one tenant it reached live in this process. Called synchronously on the
 * delivery path: it must not throw, and must not wait.
 */
export type DeliveredHandler = (notification: Notification, tenant: string, users: readonly string[]) => void;

/** What {@link ObserverMap.observe} hands back: the one way to leave. */
export interface Observation {
  /** Removes the observer from every channel; the last observer out unsubscribes. */
  release(): Promise<void>;
}

const NO_OBSERVERS: readonly Observer[] = Object.freeze([]);

/** Which users of which tenant a pushable notification reached. */
interface Reached {
  readonly users: Set<string>;
  tenant: string | undefined;
}

/**
 * One channel's observers. Most channels are one user's and have one observer: it is
 * held in an array of one, and a Set (about 100 bytes more) is made only for a second
 * (issue 17).
 */
class ChannelEntry {
  readonly channel: string;
  /** Settles once the broker has confirmed (or refused) the SUBSCRIBE. */
  readonly subscribed: Promise<void>;
  /** In the order they joined: none, one alone, or from the second on a Set. */
  observers: readonly Observer[] | Set<Observer> = NO_OBSERVERS;

  constructor(channel: string, subscribed: Promise<void>) {
    this.channel = channel;
    this.subscribed = subscribed;
  }

  get size(): number {
    const observers = this.observers;
    return observers instanceof Set ? observers.size : observers.length;
  }

  add(observer: Observer): void {
    const observers = this.observers;
    if (observers instanceof Set) observers.add(observer);
    else if (observers.length === 0) this.observers = [observer];
    else if (observers[0] !== observer) this.observers = new Set([...observers, observer]);
  }

  /** Whether `observer` was there. */
  delete(observer: Observer): boolean {
    const observers = this.observers;
    if (observers instanceof Set) return observers.delete(observer);
    if (observers[0] !== observer) return false;
    this.observers = NO_OBSERVERS;
    return true;
  }
}

/** One observer's place in its channels: the one way to leave them. */
class ChannelObservation implements Observation {
  readonly #leave: (entry: ChannelEntry, observer: Observer) => Promise<void>;
  readonly #entries: readonly ChannelEntry[];
  readonly #observer: Observer;
  #released = false;

  constructor(leave: (entry: ChannelEntry, observer: Observer) => Promise<void>, entries: readonly ChannelEntry[], observer: Observer) {
    this.#leave = leave;
    this.#entries = entries;
    this.#observer = observer;
  }

  get released(): boolean {
    return this.#released;
  }

  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    await Promise.all(this.#entries.map((entry) => this.#leave(entry, this.#observer)));
  }
}

export interface ObserverMapOptions {
  /** Where malformed broker messages are reported. @default console */
  logger?: Pick<Console, 'warn'>;
  /**
   * Where deliveries are counted: one addition per notification, however many observers
   * took it (the process's metrics read it at scrape time).
   * @default counts nobody reads
   */
  counts?: Pick<HotCounts, 'delivered'>;
  /** Who is told which users a pushable notification reached (the push worker's `WHEN_OFFLINE`). @default none */
  onDelivered?: DeliveredHandler | undefined;
}

export class ObserverMap {
  readonly #broker: Broker;
  readonly #logger: Pick<Console, 'warn'>;
  readonly #counts: Pick<HotCounts, 'delivered'>;
  readonly #onDelivered: DeliveredHandler | undefined;
  readonly #entries = new Map<string, ChannelEntry>();
  /** The last SUBSCRIBE/UNSUBSCRIBE of each channel, so the next waits for it. */
  readonly #tails = new Map<string, Promise<void>>();
  /** Channels whose connection dropped and that are not subscribed again yet. */
  readonly #interrupted = new Set<string>();

  constructor(broker: Broker, options: ObserverMapOptions = {}) {
    this.#broker = broker;
    this.#logger = options.logger ?? console;
    this.#counts = options.counts ?? { delivered: 0 };
    this.#onDelivered = options.onDelivered;
    broker.listen((channel, message) => this.#deliver(channel, message), {
      interrupted: (channels) => {
        for (const channel of channels) this.#interrupted.add(channel);
        this.#tell(channels, (observer) => observer.interrupt?.());
      },
      resubscribed: (channels) => {
        for (const channel of channels) this.#interrupted.delete(channel);
        this.#tell(channels, (observer) => observer.resync?.());
      },
    });
  }

  /**
   * Adds `observer` to every channel and resolves once the broker has confirmed each
   * SUBSCRIBE. If any fails, the observer is removed from all of them and the error
   * (a `BrokerUnavailableError`) is rethrown.
   */
  async observe(channels: readonly string[], observer: Observer): Promise<Observation> {
    const joined: ChannelEntry[] = [];
    for (const channel of new Set(channels)) {
      let entry = this.#entries.get(channel);
      if (!entry) {
        entry = new ChannelEntry(channel, this.#serialize(channel, () => this.#broker.subscribe(channel)));
        this.#entries.set(channel, entry);
        const created = entry;
        // A refused SUBSCRIBE must not stay in the map: the next observer tries again.
        created.subscribed.catch(() => {
          if (this.#entries.get(channel) === created) this.#entries.delete(channel);
        });
      }
      entry.add(observer);
      joined.push(entry);
    }
    const observation = new ChannelObservation(this.#leaveOne, joined, observer);
    try {
      await Promise.all(joined.map((entry) => entry.subscribed));
    } catch (error) {
      await observation.release();
      throw error;
    }
    // Joined a channel that is not heard right now: it must fill what it misses too.
    if (!observation.released && joined.some((entry) => this.#interrupted.has(entry.channel))) observer.interrupt?.();
    return observation;
  }

  /** How many observers `channel` has in this process. */
  observerCount(channel: string): number {
    return this.#entries.get(channel)?.size ?? 0;
  }

  /** How many channels this process holds open. */
  get channelCount(): number {
    return this.#entries.size;
  }

  readonly #leaveOne = (entry: ChannelEntry, observer: Observer): Promise<void> => this.#leave(entry, observer);

  async #leave(entry: ChannelEntry, observer: Observer): Promise<void> {
    const { channel } = entry;
    if (!entry.delete(observer) || entry.size > 0) return;
    if (this.#entries.get(channel) !== entry) return; // its SUBSCRIBE failed; nothing to undo
    this.#entries.delete(channel);
    this.#interrupted.delete(channel);
    await this.#serialize(channel, () => this.#broker.unsubscribe(channel));
  }

  #deliver(channel: string, message: BrokerMessage): number {
    const entry = this.#entries.get(channel);
    if (!entry || entry.size === 0) return 0;
    if (isReadStatePayload(message.payload)) {
      this.#tell([channel], (observer) => observer.readStateChanged?.({ readUpTo: message.id }));
      return 0;
    }
    const notification = decodeNotification(message.id, message.payload);
    if (!notification) {
      this.#logger.warn(`herald: dropped a malformed notification on ${channel}`);
      return 0;
    }
    // Only notifications that may be pushed collect who got them; the rest pay nothing.
    const reached: Reached | undefined =
      this.#onDelivered && (notification.audience === 'USER' || notification.audience === 'TOPIC') ? { users: new Set(), tenant: undefined } : undefined;
    let delivered = 0;
    // Two loops, each over one kind of collection, so neither iterates both.
    const { observers } = entry;
    if (observers instanceof Set) {
      for (const observer of observers) delivered += this.#offer(channel, observer, notification, reached);
    } else {
      for (const observer of observers) delivered += this.#offer(channel, observer, notification, reached);
    }
    this.#counts.delivered += delivered;
    if (reached?.tenant !== undefined && reached.users.size > 0) this.#onDelivered?.(notification, reached.tenant, [...reached.users]);
    return delivered;
  }

  /** Gives `observer` the notification: 1 if it took it, else 0. */
  #offer(channel: string, observer: Observer, notification: Notification, reached: Reached | undefined): number {
    try {
      if (!observer.deliver(notification)) return 0;
      if (reached && observer.owner) {
        reached.users.add(observer.owner.name);
        reached.tenant = observer.owner.tenant; // one channel lives in one tenant
      }
      return 1;
    } catch (error) {
      // One observer's fault must not cost the others their notification.
      this.#logger.warn(`herald: an observer of ${channel} failed: ${error instanceof Error ? error.message : String(error)}`);
      return 0;
    }
  }

  /** Calls `tell` once for each observer of any of `channels`. */
  #tell(channels: readonly string[], tell: (observer: Observer) => void): void {
    const told = new Set<Observer>();
    for (const channel of channels) {
      for (const observer of this.#entries.get(channel)?.observers ?? NO_OBSERVERS) {
        if (told.has(observer)) continue;
        told.add(observer);
        try {
          tell(observer);
        } catch (error) {
          this.#logger.warn(`herald: an observer of ${channel} failed: ${error instanceof Error ? error.message : String(error)}`);
        }
      }
    }
  }

  #serialize(channel: string, command: () => Promise<void>): Promise<void> {
    const previous = this.#tails.get(channel) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(command);
    this.#tails.set(channel, next);
    const forget = (): void => {
      if (this.#tails.get(channel) === next) this.#tails.delete(channel);
    };
    next.then(forget, forget);
    return next;
  }
}
