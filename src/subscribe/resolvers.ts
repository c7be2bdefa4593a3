/**
 * `Subscription.onNotificationReceived`: the GraphQL face of {@link Subscriptions}. Its
 * feed's typed errors become GraphQL errors with `extensions.code`; a history gap
 * becomes an event whose error has `HISTORY_GAP`.
 */
import { ErrorCode, graphqlError, toGraphQLError } from '../common/errors.js';
import { requirePrincipal, type HeraldContext } from '../graphql/schema.js';
import type { Feed } from './feed.js';
import type { DirectSink, FeedItem, Subscriptions } from './subscriptions.js';

interface SubscribeArgs {
  userName: unknown;
  since?: unknown;
}

export function createSubscriptionResolvers(subscriptions: Subscriptions) {
  async function subscribe(_root: unknown, args: SubscribeArgs, context: HeraldContext): Promise<AsyncIterableIterator<FeedItem>> {
    const principal = requirePrincipal(context);
    const request = { principal, userName: args.userName, since: args.since ?? context.lastEventId };
    try {
      if (context.directSink) return untilEnded(await subscriptions.openInto(request, context.directSink));
      return withGraphQLErrors(await subscriptions.open(request));
    } catch (error) {
      throw toGraphQLError(error);
    }
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
 * The feed, with its errors turned into GraphQL errors. A plain object rather than an
 * async generator: a generator's `return()` would wait behind a pending `next()`, so a
 * subscription completed while idle would never release its channels.
 */
function withGraphQLErrors(feed: Feed<FeedItem>): AsyncIterableIterator<FeedItem> {
  const iterator: AsyncIterableIterator<FeedItem> = {
    next: () =>
      feed.next().catch((error: unknown) => {
        throw toGraphQLError(error);
      }),
    return: () => feed.return(),
    throw: async (error: unknown) => {
      await feed.return();
      throw error;
    },
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}

/**
 * For a subscription whose sink writes to its client directly: an iterator that yields
 * nothing, ends when the sink ends (rejecting with the sink's error, as a GraphQL
 * error), and ends the sink when the transport returns it.
 */
function untilEnded(sink: DirectSink): AsyncIterableIterator<FeedItem> {
  const iterator: AsyncIterableIterator<FeedItem> = {
    next: () =>
      sink.ended.then((error) => {
        if (error) throw toGraphQLError(error);
        return { value: undefined, done: true };
      }),
    return: async () => {
      await sink.return();
      return { value: undefined, done: true };
    },
    throw: async (error: unknown) => {
      await sink.return();
      throw error;
    },
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}
