/**
 * The observer map: channel → the live subscriptions of this process that listen on it.
 *
 * Each channel is subscribed in the broker once, however many observers it has: the
 * first observer subscribes it, later ones piggyback (also on a SUBSCRIBE still in
 * flight), the last one to leave unsubscribes it. SUBSCRIBE and UNSUBSCRIBE of one
 * channel run one after another, never interleaved. Knows nothing of WebSocket, SSE or
 * GraphQL: an observer is anything with `notify`.
 */
import type { Broker, BrokerMessage } from '../broker/types.js';
import { isPushedAudience } from '../common/audiences.js';
import { decodeNotification, isReadStatePayload, type Notification, type ReadStateChange } from '../common/notification.js';
import type { HotCounts } from '../common/metrics.js';
import type { LiveTransport } from '../ledger/events.js';
import { decodePreferencesChange, type UserPreferences } from '../preferences/preferences.js';

/** One live subscription, as the map sees it. */
export interface Observer {
  /**
   * Called once per notification on any channel it observes. Returns false when the
   * observer could not take it (it has ended, or fell too far behind). Must not throw.
   */
  notify(notification: Notification): boolean;
  /**
   * Called when the user's read position moved (a change on the user's channel).
   * Not a notification: it is never in history and is not counted. Must not throw.
   */
  readStateChanged?(change: ReadStateChange): void;
  /**
   * The user's preferences changed (a change on the user's channel, from any device).
   * Not a notification: never in history, not counted. Must not throw.
   */
  preferencesChanged?(preferences: UserPreferences): void;
  /**
   * Its channels' connection dropped: notifications may be lost until {@link resync}.
   * Also called for an observer that joins a channel while it is interrupted.
   */
  interrupt?(): void;
  /** Its channels are heard again: history holds whatever was missed since {@link interrupt}. */
  resync?(): void;
  /** The user whose subscription it is, for {@link ObserverMapOptions.onDelivered}. */
  readonly owner?: { readonly tenant: string; readonly name: string } | undefined;
  /** The transport it runs on, counted for {@link ObserverMapOptions.onLive}. @default uncounted by transport */
  readonly transport?: LiveTransport | undefined;
}

/**
 * Told, once per notification to a `USER` or a `TOPIC` (the pushable audiences), which
 * users of one tenant it reached live in this process. Called synchronously on the
 * delivery path: it must not throw, and must not wait.
 */
export type DeliveredHandler = (notification: Notification, tenant: string, users: readonly string[]) => void;

/** How many subscriptions of each transport took one notification in this process. */
export interface TransportCounts {
  websocket: number;
  sse: number;
  grpc: number;
}

/**
 * Told, once per notification that reached any live subscription in this process, how
 * many took it, by transport, and — for the pushable audiences — which users (the set
 * {@link DeliveredHandler} gets). Called synchronously on the delivery path: it must not
 * throw, and must not wait. `transports` is reused for the next notification: read it now.
 */
export type LiveHandler = (notification: Notification, tenant: string, subscriptions: number, transports: Readonly<TransportCounts>, users: ReadonlySet<string> | undefined) => void;

/** What {@link ObserverMap.observe} hands back: the one way to leave. */
export interface Observation {
  /** Removes the observer from every channel; the last observer out unsubscribes. */
  release(): Promise<void>;
}

interface ChannelEntry {
  readonly observers: Set<Observer>;
  /** Settles once the broker has confirmed (or refused) the SUBSCRIBE. */
  readonly subscribed: Promise<void>;
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
  /** Who is told how many live subscriptions took each notification (the ledger's live event). @default none */
  onLive?: LiveHandler | undefined;
}

export class ObserverMap {
  readonly #broker: Broker;
  readonly #logger: Pick<Console, 'warn'>;
  readonly #counts: Pick<HotCounts, 'delivered'>;
  readonly #onDelivered: DeliveredHandler | undefined;
  readonly #onLive: LiveHandler | undefined;
  /** One per map, filled afresh by each dispatch that has an {@link ObserverMapOptions.onLive}. */
  readonly #transports: TransportCounts = { websocket: 0, sse: 0, grpc: 0 };
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
    this.#onLive = options.onLive;
    broker.listen((channel, message) => this.#dispatch(channel, message), {
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
    const joined: Array<[string, ChannelEntry]> = [];
    for (const channel of new Set(channels)) {
      let entry = this.#entries.get(channel);
      if (!entry) {
        entry = { observers: new Set(), subscribed: this.#serialize(channel, () => this.#broker.subscribe(channel)) };
        this.#entries.set(channel, entry);
        const created = entry;
        // A refused SUBSCRIBE must not stay in the map: the next observer tries again.
        created.subscribed.catch(() => {
          if (this.#entries.get(channel) === created) this.#entries.delete(channel);
        });
      }
      entry.observers.add(observer);
      joined.push([channel, entry]);
    }
    let released = false;
    const release = async (): Promise<void> => {
      if (released) return;
      released = true;
      await Promise.all(joined.map(([channel, entry]) => this.#leave(channel, entry, observer)));
    };
    try {
      await Promise.all(joined.map(([, entry]) => entry.subscribed));
    } catch (error) {
      await release();
      throw error;
    }
    // Joined a channel that is not heard right now: it must fill what it misses too.
    if (!released && joined.some(([channel]) => this.#interrupted.has(channel))) observer.interrupt?.();
    return { release };
  }

  /** How many observers `channel` has in this process. */
  observerCount(channel: string): number {
    return this.#entries.get(channel)?.observers.size ?? 0;
  }

  /** How many channels this process holds open. */
  get channelCount(): number {
    return this.#entries.size;
  }

  async #leave(channel: string, entry: ChannelEntry, observer: Observer): Promise<void> {
    if (!entry.observers.delete(observer) || entry.observers.size > 0) return;
    if (this.#entries.get(channel) !== entry) return; // its SUBSCRIBE failed; nothing to undo
    this.#entries.delete(channel);
    this.#interrupted.delete(channel);
    await this.#serialize(channel, () => this.#broker.unsubscribe(channel));
  }

  #dispatch(channel: string, message: BrokerMessage): number {
    const entry = this.#entries.get(channel);
    if (!entry || entry.observers.size === 0) return 0;
    if (isReadStatePayload(message.payload)) {
      this.#tell([channel], (observer) => observer.readStateChanged?.({ readUpTo: message.id }));
      return 0;
    }
    const notification = decodeNotification(message.id, message.payload);
    if (!notification) {
      // Looked for only here: a notification pays nothing for it.
      const preferences = decodePreferencesChange(message.id, message.payload);
      if (preferences !== undefined) {
        this.#tell([channel], (observer) => observer.preferencesChanged?.(preferences));
        return 0;
      }
      this.#logger.warn(`herald: dropped a malformed notification on ${channel}`);
      return 0;
    }
    const onLive = this.#onLive;
    // Only notifications that may be pushed collect who got them; the rest pay nothing.
    const reached = (this.#onDelivered || onLive) && isPushedAudience(notification.audience) ? new Set<string>() : undefined;
    // With a ledger, a counter per transport: no allocation per observer.
    const transports = onLive && this.#transports;
    if (transports) transports.websocket = transports.sse = transports.grpc = 0;
    let tenant: string | undefined;
    let delivered = 0;
    for (const observer of entry.observers) {
      try {
        if (observer.notify(notification)) {
          delivered += 1;
          if (transports) {
            const transport = observer.transport;
            if (transport !== undefined) transports[transport] += 1;
            tenant ??= observer.owner?.tenant; // one channel lives in one tenant
          }
          if (reached && observer.owner) {
            reached.add(observer.owner.name);
            tenant = observer.owner.tenant;
          }
        }
      } catch (error) {
        // One observer's fault must not cost the others their notification.
        this.#logger.warn(`herald: an observer of ${channel} failed: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    this.#counts.delivered += delivered;
    if (reached && tenant !== undefined && reached.size > 0) this.#onDelivered?.(notification, tenant, [...reached]);
    if (transports && tenant !== undefined && delivered > 0) onLive?.(notification, tenant, delivered, transports, reached);
    return delivered;
  }

  /** Calls `tell` once for each observer of any of `channels`. */
  #tell(channels: readonly string[], tell: (observer: Observer) => void): void {
    const told = new Set<Observer>();
    for (const channel of channels) {
      for (const observer of this.#entries.get(channel)?.observers ?? []) {
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
