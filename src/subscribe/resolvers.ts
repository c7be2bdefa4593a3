/**
 * `Subscription.onNotificationReceived`: authorizes, opens the subscriber's channels in
 * the observer map and hands the transport a feed. With a `since` cursor it resumes:
 * live notifications are observed first and held back, history after the cursor is
 * read and queued, then the held-back ones follow, skipping any the history already
 * held — no gap, no duplicate. Transport-free: the WebSocket and SSE transports both
 * execute it.
 */
import { authorizeSubscription, isExpired } from '../auth/index.js';
import type { Broker, HistoryAfter } from '../broker/types.js';
import { compareIds } from '../broker/history.js';
import { assertValidName, type ChannelNamer } from '../channels/index.js';
import { formatCursor, parseCursor, type Cursor } from '../common/cursor.js';
import { ErrorCode, graphqlError, toGraphQLError } from '../common/errors.js';
import { decodeNotification, type Notification } from '../common/notification.js';
import { runAt, type Cancel } from '../common/timers.js';
import { requirePrincipal, type HeraldContext } from '../graphql/schema.js';
import { createFeed, type Feed } from './feed.js';
import type { Observation, Observer, ObserverMap } from './observers.js';

export interface SubscriptionResolverOptions {
  observers: ObserverMap;
  broker: Broker;
  channels: ChannelNamer;
  /** Most notifications queued for one slow subscription (`MAX_QUEUED_NOTIFICATIONS`). */
  maxQueued: number;
}

/** Told to a resuming subscriber whose missed notifications are not all kept. */
interface HistoryGap {
  readonly gap: string;
}

type FeedItem = Notification | HistoryGap;

interface SubscribeArgs {
  userName: unknown;
  since?: unknown;
}

export function createSubscriptionResolvers(options: SubscriptionResolverOptions) {
  const { observers, broker, channels, maxQueued } = options;
  const overflowError = () =>
    graphqlError(
      ErrorCode.LimitExceeded,
      `subscriber fell more than ${maxQueued} notifications behind (MAX_QUEUED_NOTIFICATIONS); subscribe again`,
    );

  async function subscribe(_root: unknown, args: SubscribeArgs, context: HeraldContext): Promise<Feed<FeedItem>> {
    const principal = requirePrincipal(context);
    try {
      authorizeSubscription(principal, assertValidName('userName', args.userName));
    } catch (error) {
      throw toGraphQLError(error);
    }
    if (isExpired(principal)) throw graphqlError(ErrorCode.Unauthenticated, 'token expired');
    const since = args.since ?? context.lastEventId;
    const after = since == null ? undefined : parseCursor(since);
    if (since != null && after === undefined) throw graphqlError(ErrorCode.BadUserInput, 'since is not a notification id');

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
      throw toGraphQLError(error);
    }
    if (ended) {
      // The reader left while the SUBSCRIBE (or the history read) was in flight.
      await observation.release();
      return feed;
    }
    cancelExpiry = runAt(principal.expiresAt, () => feed.fail(graphqlError(ErrorCode.Unauthenticated, 'token expired')));
    return feed;
  }

  return {
    Subscription: {
      onNotificationReceived: {
        subscribe,
        resolve: (item: FeedItem, _args: unknown, context: HeraldContext) => {
          if ('gap' in item) throw graphqlError(ErrorCode.HistoryGap, item.gap);
          context.onDelivered?.(item.id);
          return item;
        },
      },
    },
  };
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
