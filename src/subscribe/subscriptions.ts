/**
 * Opening a subscription, free of any transport: authorizes, opens the subscriber's
 * channels in the observer map behind a {@link ResumingObserver} and returns the
 * subscription's sink. With a `since` cursor it resumes: the history after the cursor
 * comes first, then the live notifications, with no gap and no duplicate; and whenever
 * the Redis subscriber connection drops and comes back, the subscription fills what it
 * missed from history the same way. GraphQL (WebSocket and SSE) and gRPC all call it.
 */
import { AuthenticationError, authorizeSubscription, isExpired, type Principal } from '../auth/index.js';
import type { Broker } from '../broker/types.js';
import { assertValidName, type ChannelNamer } from '../channels/index.js';
import { parseCursor } from '../common/cursor.js';
import { InvalidInputError, LimitExceededError } from '../common/failures.js';
import { runAt, type Cancel } from '../common/timers.js';
import { createFeed, type Feed } from './feed.js';
import type { Observation, ObserverMap } from './observers.js';
import { createResumingObserver, type ResumingObserver } from './resume.js';
import type { FeedItem, Sink } from './sink.js';

export type { FeedItem, HistoryGap, Sink } from './sink.js';

/**
 * Notifications read from history per Redis call when a subscription catches up: a page
 * costs Redis well under a millisecond, and the next is read only once the client has
 * taken this one, so an old cursor costs neither Redis time nor memory in one piece.
 */
export const HISTORY_PAGE_SIZE = 256;

export interface SubscriptionsOptions {
  observers: ObserverMap;
  broker: Broker;
  channels: ChannelNamer;
  /** Most notifications queued for one slow subscription (`MAX_QUEUED_NOTIFICATIONS`). */
  maxQueued: number;
}

export interface OpenRequest {
  readonly principal: Principal;
  /** Must be the principal's own name. */
  readonly userName: unknown;
  /** A resume cursor (a notification id), if any. */
  readonly since?: unknown;
}

/** A sink that writes straight to its client and says when, and why, it ended. */
export interface DirectSink extends Sink {
  /** Settles when the sink ends: with the error it failed with, or undefined. */
  readonly ended: Promise<Error | undefined>;
}

/** Makes the sink of one subscription; `onEnd` must be called once when it ends, however it ends. */
export type SinkFactory<S extends Sink> = (hooks: { onEnd: () => Promise<void> }) => S;

export interface Subscriptions {
  /**
   * Opens a subscription read through a {@link Feed}. Throws a typed error naming what
   * was wrong (auth, input, broker). The feed ends with an `AuthenticationError` when
   * the token expires and a `LimitExceededError` when its reader falls `maxQueued` behind.
   */
  open(request: OpenRequest): Promise<Feed<FeedItem>>;
  /** Opens a subscription into a sink of the caller's making. */
  openInto<S extends Sink>(request: OpenRequest, makeSink: SinkFactory<S>): Promise<S>;
  /** The error a sink fails with when its reader falls too far behind. */
  overflowError(): Error;
}

export function createSubscriptions(options: SubscriptionsOptions): Subscriptions {
  const { observers, broker, channels, maxQueued } = options;
  const overflowError = () =>
    new LimitExceededError(`subscriber fell more than ${maxQueued} notifications behind (MAX_QUEUED_NOTIFICATIONS); subscribe again`);

  async function openInto<S extends Sink>({ principal, userName, since }: OpenRequest, makeSink: SinkFactory<S>): Promise<S> {
    authorizeSubscription(principal, assertValidName('userName', userName));
    if (isExpired(principal)) throw new AuthenticationError('token expired');
    const after = since == null || since === '' ? undefined : parseCursor(since);
    if (since != null && since !== '' && after === undefined) throw new InvalidInputError('since is not a notification id');

    let observation: Observation | undefined;
    let observer: ResumingObserver | undefined;
    let cancelExpiry: Cancel = () => undefined;
    let ended = false;
    const sink = makeSink({
      onEnd: async () => {
        ended = true;
        cancelExpiry();
        observer?.end();
        await observation?.release();
      },
    });
    const destinations = channels.subscriberDestinations(principal);
    const tenantKey = channels.tenantKey(principal.tenant);
    const streams = destinations.map(({ stream }) => stream);
    observer = createResumingObserver({
      sink,
      since: after,
      read: (position) => broker.readAfter({ tenantKey, streams, after: position, limit: HISTORY_PAGE_SIZE }),
      maxHeld: maxQueued,
      overflowError,
    });
    try {
      // Live first, so nothing published while history is read can slip between the two.
      observation = await observers.observe(
        destinations.map(({ channel }) => channel),
        observer,
      );
      await observer.catchUp();
    } catch (error) {
      await sink.return();
      throw error;
    }
    if (ended) {
      // The reader left while the SUBSCRIBE (or the history read) was in flight.
      await observation.release();
      return sink;
    }
    cancelExpiry = runAt(principal.expiresAt, () => sink.fail(new AuthenticationError('token expired')));
    return sink;
  }

  return {
    openInto,
    open: (request) => openInto(request, ({ onEnd }) => createFeed<FeedItem>({ maxQueued, overflowError, onEnd })),
    overflowError,
  };
}
