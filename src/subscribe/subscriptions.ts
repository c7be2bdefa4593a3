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

export interface Subscriptions {
  /**
   * Opens a subscription. Throws a typed error naming what was wrong (auth, input,
   * broker). The feed ends with an `AuthenticationError` when the token expires and a
   * `LimitExceededError` when its reader falls `maxQueued` behind.
   */
  open(request: OpenRequest): Promise<Feed<FeedItem>>;
}

export function createSubscriptions(options: SubscriptionsOptions): Subscriptions {
  const { observers, broker, channels, maxQueued } = options;
  const overflowError = () =>
    new LimitExceededError(`subscriber fell more than ${maxQueued} notifications behind (MAX_QUEUED_NOTIFICATIONS); subscribe again`);

  async function open({ principal, userName, since }: OpenRequest): Promise<Feed<FeedItem>> {
    authorizeSubscription(principal, assertValidName('userName', userName));
    if (isExpired(principal)) throw new AuthenticationError('token expired');
    const after = since == null || since === '' ? undefined : parseCursor(since);
    if (since != null && since !== '' && after === undefined) throw new InvalidInputError('since is not a notification id');

    let observation: Observation | undefined;
    let cancelExpiry: Cancel = () => undefined;
    let ended = false;
    const feed = createFeed<FeedItem>({
      maxQueued,
      overflowError,
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

  return { open };
}

/**
 * Holds live notifications back until the history after `after` has been queued, then
 * lets through only those newer than the last one queued. The filter stays on after the
 * switch: the history read and the live message travel on different Redis connections,
 * so a notification can be in the history *and* arrive live afterwards.
 */
function createResumeGate(
  feed: Feed<FeedItem>,
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
