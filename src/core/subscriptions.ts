/**
 * Opening a subscription, free of any transport: authorizes, opens the subscriber's
 * channels in the observer map behind a {@link ResumingObserver} and returns the
 * subscription's sink. With a `since` cursor it resumes: the history after the cursor
 * comes first, then the live notifications, with no gap and no duplicate; and whenever
 * the Redis subscriber connection drops and comes back, the subscription fills what it
 * missed from history the same way. Every transport calls it itself: the WebSocket
 * (`openInto`, with a sink that writes to the socket), SSE and gRPC (`open`, a queue
 * each reads).
 */
import { AuthenticationError, authorizeSubscription, isExpired, type Principal } from '../auth/index.js';
import type { Broker, HistoryAfter } from '../broker/types.js';
import { assertValidName, type Namer } from '../names/index.js';
import { parseCursor, type ReadPosition } from '../common/cursor.js';
import { InvalidInputError } from '../common/failures.js';
import { runAt, type Cancel } from '../common/timers.js';
import type { SubscriptionItem } from '../common/notification.js';
import { createPullQueue, type PullQueue } from './pull-queue.js';
import type { Observation, ObserverMap } from './observers.js';
import { createResumingObserver, type HistorySource, type LoadedPreferences, type ResumingObserver } from './resume.js';
import type { Sink } from './sink.js';
import type { LiveTransport } from '../ledger/events.js';

/**
 * Most notifications read from history per Redis call when a subscription catches up,
 * merged from all its streams in the call: the next page is read only once the client
 * has taken this one, so an old cursor costs neither Redis time nor memory in one piece,
 * and a call's work for each stream (a user in 50 stores has 52) is spread over a page
 * this size, so catching up runs as fast over many streams as over one (a page per stream
 * per step held 3 entries: 48–198 notifications/s over 50 stores, ~1,000/s over one).
 */
const HISTORY_PAGE_SIZE = 256;

/**
 * Most bytes of notification payload in one such page (it ends with the one that
 * reaches it): what the subscribe server holds for a client that does not read, beside
 * the sink's own bound — 128 notifications of the default 2,000-character limit.
 */
const HISTORY_PAGE_BYTES = 256 * 1024;

export interface SubscriptionsOptions {
  observers: ObserverMap;
  broker: Broker;
  namer: Namer;
  /**
   * Most live notifications held back for one subscription while its history is read
   * (`MAX_QUEUED_NOTIFICATIONS`); past it they are let go and read from history too.
   */
  maxQueued: number;
  /**
   * Most bytes of notifications queued for one SSE or gRPC reader that has not taken
   * them yet (`MAX_BUFFERED_BYTES`, the WebSocket's bound too).
   */
  maxBufferedBytes: number;
  /**
   * The topics a user follows (at most `PUSH_MAX_TOPICS_PER_USER`), read once when a
   * subscription opens: it hears them live, and resumes them from history, like its
   * user, stores and company. A topic followed later is heard by subscriptions opened
   * after it. Rejects with a typed error (Redis unavailable).
   * @default none: no topics (the in-process broker keeps none)
   */
  topicsOf?: ((principal: Principal) => Promise<readonly string[]>) | undefined;
  /**
   * The user's preferences and the tenant's defaults, read once when a subscription
   * opens, while it joins its channels (what arrives meanwhile is held): it then drops
   * what its user turned off `IN_APP`, and follows the user's later changes as they are
   * told on the user's channel, a change told during the read included. Rejects with a
   * typed error (Redis unavailable).
   * @default none: every notification is delivered
   */
  preferencesOf?: ((principal: Principal) => Promise<LoadedPreferences>) | undefined;
}

/**
 * About what a notification takes on the wire (its fields, and 64 bytes of names and
 * framing; characters of more than one byte are counted as one).
 */
function queuedBytes(item: SubscriptionItem): number {
  if ('gap' in item) return 64 + item.gap.length;
  if ('readUpTo' in item) return 64 + item.readUpTo.length;
  return 64 + item.id.length + item.sender.length + item.text.length;
}

export interface OpenRequest {
  readonly principal: Principal;
  /** Must be the principal's own name. */
  readonly userName: unknown;
  /** A resume cursor (a notification id), if any. */
  readonly since?: unknown;
  /**
   * Whether the subscription also yields the user's read-state changes (`onInboxEvent`);
   * `onNotificationReceived` and the gRPC feed yield notifications only.
   * @default false
   */
  readonly readState?: boolean;
  /** The transport it is opened on, for the ledger's live counts. @default none */
  readonly transport?: LiveTransport | undefined;
}

/**
 * What a sink is given: `onEnd` must be called once when it ends, however it ends, as a
 * method of `hooks` (it is one subscription's object, not a function of its own).
 */
export interface SinkHooks {
  onEnd(): Promise<void>;
}

/** Makes the sink of one subscription. */
export type SinkFactory<S extends Sink> = (hooks: SinkHooks) => S;

export interface Subscriptions {
  /**
   * Opens a subscription read through a {@link PullQueue}. Throws a typed error naming what
   * was wrong (auth, input, broker). The queue ends with an `AuthenticationError` when
   * the token expires. A reader more than `maxBufferedBytes` behind is not ended: what
   * does not fit is read from history once it has taken what it has.
   */
  open(request: OpenRequest): Promise<PullQueue<SubscriptionItem>>;
  /** Opens a subscription into a sink of the caller's making. */
  openInto<S extends Sink>(request: OpenRequest, makeSink: SinkFactory<S>, options?: OpenOptions): Promise<S>;
}

export interface OpenOptions {
  /**
   * Whether the subscription ends with an `AuthenticationError` when the token expires.
   * False for a transport that ends it then itself: the WebSocket closes the whole
   * connection with 4403, so a timer per subscription would only fire beside it.
   * @default true
   */
  readonly endsAtExpiry?: boolean;
}

export function createSubscriptions(options: SubscriptionsOptions): Subscriptions {
  const { observers, broker, namer, maxQueued, maxBufferedBytes, topicsOf, preferencesOf } = options;

  async function openInto<S extends Sink>({ principal, userName, since, readState, transport }: OpenRequest, makeSink: SinkFactory<S>, options: OpenOptions = {}): Promise<S> {
    authorizeSubscription(principal, assertValidName('userName', userName));
    if (isExpired(principal)) throw new AuthenticationError('token expired');
    const after = since == null || since === '' ? undefined : parseCursor(since);
    if (since != null && since !== '' && after === undefined) throw new InvalidInputError('since is not a notification id');

    const loading = preferencesOf?.(principal);
    // Awaited below; one that fails while the channels are joined must not go unhandled.
    loading?.catch(() => undefined);
    const destinations = namer.subscriberDestinations(principal);
    const opened = new OpenSubscription(broker, namer.tenantKey(principal.tenant), destinations.map(({ stream }) => stream));
    const sink = makeSink(opened);
    const observer = createResumingObserver({ sink, since: after, history: opened, maxHeld: maxQueued, owner: principal, readState: readState ?? false, transport, awaitPreferences: loading !== undefined });
    opened.observer = observer;
    try {
      // Live first, so nothing published while history is read can slip between the two.
      opened.observation = await observers.observe(
        destinations.map(({ channel }) => channel),
        observer,
      );
      // The topics are read only now: the user's own channels are in the observer map
      // from the first turn of the opening, as they always were, and the topics join
      // before anything is read from history or the subscription is reported open.
      const topics = topicsOf === undefined || opened.ended ? [] : await topicsOf(principal);
      if (topics.length > 0 && !opened.ended) {
        const topicDestinations = topics.map((topic) => namer.destination(principal.tenant, 'TOPIC', topic));
        opened.streams = [...opened.streams, ...topicDestinations.map(({ stream }) => stream)];
        opened.topicObservation = await observers.observe(
          topicDestinations.map(({ channel }) => channel),
          observer,
        );
      }
      if (loading !== undefined) observer.preferencesLoaded(await loading);
      await observer.catchUp();
    } catch (error) {
      await sink.return();
      throw error;
    }
    if (opened.ended) {
      // The reader left while the SUBSCRIBE (or the history read) was in flight.
      await opened.release();
      return sink;
    }
    if (options.endsAtExpiry ?? true) opened.cancelExpiry = runAt(principal.expiresAt, () => sink.fail(new AuthenticationError('token expired')));
    return sink;
  }

  return {
    openInto,
    open: (request) =>
      openInto(request, (hooks) =>
        // Full is not fatal: what does not fit is read from history once the reader has room.
        createPullQueue<SubscriptionItem>({ maxQueued: maxBufferedBytes, weigh: queuedBytes, onEnd: () => hooks.onEnd() }),
      ),
  };
}

/**
 * One open subscription's records, in one object: the sink's hooks and the resuming
 * observer's history. A subscription lives as long as its connection; closures over
 * `openInto`'s scope cost a function each and kept the whole scope alive.
 */
class OpenSubscription implements SinkHooks, HistorySource {
  observation: Observation | undefined;
  topicObservation: Observation | undefined;
  observer: ResumingObserver | undefined;
  cancelExpiry: Cancel | undefined;
  ended = false;
  readonly #broker: Broker;
  readonly #tenantKey: string;
  /** The streams history is read from: the topics' join them once they are known. */
  streams: readonly string[];

  constructor(broker: Broker, tenantKey: string, streams: readonly string[]) {
    this.#broker = broker;
    this.#tenantKey = tenantKey;
    this.streams = streams;
  }

  async onEnd(): Promise<void> {
    this.ended = true;
    this.cancelExpiry?.();
    this.observer?.end();
    await this.release();
  }

  async release(): Promise<void> {
    await Promise.all([this.observation?.release(), this.topicObservation?.release()]);
  }

  read(after: ReadPosition): Promise<HistoryAfter> {
    return this.#broker.readAfter({ tenantKey: this.#tenantKey, streams: this.streams, after, limit: HISTORY_PAGE_SIZE, maxBytes: HISTORY_PAGE_BYTES });
  }
}
