/**
 * Opening a subscription, free of any transport: authorizes, opens the subscriber's
 * channels in the observer map and returns a feed. With a `since` cursor it resumes:
 * live notifications are observed first and held back, history after the cursor is
 * read and queued, then the held-back ones follow, skipping any the history already
 * held — no gap, no duplicate. GraphQL (WebSocket and SSE) and gRPC all call it.
 */
import { AuthenticationError, authorizeSubscription, isExpired, type Principal } from '../auth/index.js';
import { compareIds } from '../broker/history.js';
import type { Broker, HistoryAfter } from '../broker/types.js';
import { assertValidName, type ChannelNamer } from '../channels/index.js';
import { formatCursor, parseCursor, type Cursor } from '../common/cursor.js';
import { InvalidInputError, LimitExceededError } from '../common/failures.js';
import { decodeNotification, type Notification } from '../common/notification.js';
import { runAt, type Cancel } from '../common/timers.js';
import { createFeed, type Feed } from './feed.js';
import type { Observation, Observer, ObserverMap } from './observers.js';

export interface SubscriptionsOptions {
  observers: ObserverMap;
  broker: Broker;
  channels: ChannelNamer;
  /** Most notifications queued for one slow subscription (`MAX_QUEUED_NOTIFICATIONS`). */
  maxQueued: number;
}

/** Told to a resuming subscriber whose missed notifications are not all kept. */
export interface HistoryGap {
  readonly gap: string;
}

/** What a subscription's feed yields. */
export type FeedItem = Notification | HistoryGap;

export interface OpenRequest {
  readonly principal: Principal;
  /** Must be the principal's own name. */
  readonly userName: unknown;
  /** A resume cursor (a notification id), if any. */
  readonly since?: unknown;
}

/**
 * Where a subscription's items go. A {@link Feed} is one (a queue its transport reads);
 * the WebSocket fan-out path has another that writes straight to its socket.
 */
export interface Sink {
  /** Takes one live item; false if the sink could not (ended, or too far behind). */
  deliver(item: FeedItem): boolean;
  /** Takes a history backfill, in order, ahead of anything live. */
  preload(items: readonly FeedItem[]): void;
  /** Ends the subscription with `error` (token expired, too slow). */
  fail(error: Error): void;
  /** Ends the subscription now. */
  return(): Promise<unknown>;
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
    let cancelExpiry: Cancel = () => undefined;
    let ended = false;
    const feed = makeSink({
      onEnd: async () => {
        ended = true;
        cancelExpiry();
        await observation?.release();
      },
    });
    const destinations = channels.subscriberDestinations(principal);
    const gate = after ? createResumeGate(feed, after, maxQueued, overflowError) : undefined;
    try {
      // Live first, so nothing published while history is read can slip between the two.
      observation = await observers.observe(
        destinations.map(({ channel }) => channel),
        gate ?? feed,
      );
      if (gate && after) {
        gate.open(
          await broker.readAfter({
            tenantKey: channels.tenantKey(principal.tenant),
            streams: destinations.map(({ stream }) => stream),
            after,
          }),
        );
      }
    } catch (error) {
      await feed.return();
      throw error;
    }
    if (ended) {
      // The reader left while the SUBSCRIBE (or the history read) was in flight.
      await observation.release();
      return feed;
    }
    cancelExpiry = runAt(principal.expiresAt, () => feed.fail(new AuthenticationError('token expired')));
    return feed;
  }

  return {
    openInto,
    open: (request) => openInto(request, ({ onEnd }) => createFeed<FeedItem>({ maxQueued, overflowError, onEnd })),
    overflowError,
  };
}

/**
 * Holds live notifications back until the history after `after` has been queued, then
 * lets through only those newer than the last one queued. The filter stays on after the
 * switch: the history read and the live message travel on different Redis connections,
 * so a notification can be in the history *and* arrive live afterwards.
 */
function createResumeGate(
  feed: Sink,
  after: Cursor,
  maxQueued: number,
  overflowError: () => Error,
): Observer & { open(history: HistoryAfter): void } {
  let held: Notification[] | undefined = [];
  let last: string | undefined = formatCursor(after);
  const isNew = (notification: Notification): boolean => last === undefined || compareIds(notification.id, last) > 0;
  return {
    deliver(notification) {
      if (held) {
        if (held.length >= maxQueued) {
          feed.fail(overflowError());
          return false;
        }
        held.push(notification);
        return true;
      }
      if (!isNew(notification)) return true; // already delivered from history
      last = notification.id;
      return feed.deliver(notification);
    },
    open(history) {
      const waiting = held ?? [];
      held = undefined;
      if (history.gap) {
        // A new history began: every live notification is new to this reader.
        last = undefined;
        feed.preload([{ gap: history.reason }, ...waiting]);
        last = waiting.at(-1)?.id;
        return;
      }
      const missed = history.entries
        .map((entry) => decodeNotification(entry.id, entry.payload))
        .filter((notification): notification is Notification => notification !== undefined);
      const items = [...missed, ...waiting].filter((notification) => {
        if (!isNew(notification)) return false;
        last = notification.id;
        return true;
      });
      feed.preload(items);
    },
  };
}
