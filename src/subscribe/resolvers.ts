/**
 * `Subscription.onNotificationReceived`: authorizes, opens the subscriber's channels in
 * the observer map and hands the transport a feed. Transport-free: graphql-ws and the
 * SSE handler both execute it.
 */
import { authorizeSubscription, isExpired } from '../auth/index.js';
import { assertValidName, type ChannelNamer } from '../channels/index.js';
import { ErrorCode, graphqlError, toGraphQLError } from '../common/errors.js';
import type { Notification } from '../common/notification.js';
import { runAt, type Cancel } from '../common/timers.js';
import { requirePrincipal, type HeraldContext } from '../graphql/schema.js';
import { createFeed, type Feed } from './feed.js';
import type { Observation, ObserverMap } from './observers.js';

export interface SubscriptionResolverOptions {
  observers: ObserverMap;
  channels: ChannelNamer;
  /** Most notifications queued for one slow subscription (`MAX_QUEUED_NOTIFICATIONS`). */
  maxQueued: number;
}

export function createSubscriptionResolvers(options: SubscriptionResolverOptions) {
  const { observers, channels, maxQueued } = options;

  async function subscribe(_root: unknown, args: { userName: unknown }, context: HeraldContext): Promise<Feed> {
    const principal = requirePrincipal(context);
    try {
      authorizeSubscription(principal, assertValidName('userName', args.userName));
    } catch (error) {
      throw toGraphQLError(error);
    }
    if (isExpired(principal)) throw graphqlError(ErrorCode.Unauthenticated, 'token expired');

    let observation: Observation | undefined;
    let cancelExpiry: Cancel = () => undefined;
    let ended = false;
    const feed = createFeed({
      maxQueued,
      overflowError: () =>
        graphqlError(
          ErrorCode.LimitExceeded,
          `subscriber fell more than ${maxQueued} notifications behind (MAX_QUEUED_NOTIFICATIONS); subscribe again`,
        ),
      onEnd: async () => {
        ended = true;
        cancelExpiry();
        await observation?.release();
      },
    });
    try {
      observation = await observers.observe(
        channels.subscriberChannels(principal).map(({ channel }) => channel),
        feed,
      );
    } catch (error) {
      await feed.return();
      throw toGraphQLError(error);
    }
    if (ended) {
      // The reader left while the SUBSCRIBE was in flight.
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
        resolve: (notification: Notification) => notification,
      },
    },
  };
}
