/**
 * `herald.v1.NotificationFeed/Feed`: a server stream over the same observer map, broker
 * and resume logic as the GraphQL subscription (one Redis channel per process, however
 * many gRPC and GraphQL observers listen).
 */
import { once } from 'node:events';
import { status, type ServerWritableStream, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { TokenVerifier } from '../../auth/index.js';
import type { MaskError } from '../../common/errors.js';
import { bound, type Logger } from '../../common/logger.js';
import type { PullQueue } from '../../core/pull-queue.js';
import type { SubscriptionItem } from '../../common/notification.js';
import type { Subscriptions } from '../../core/subscriptions.js';
import { principalOf } from './auth.js';
import { loadHeraldProto, toGrpcAudience, type FeedRequest, type FeedResponse } from './proto.js';
import { toServiceError } from './status.js';

export interface FeedServiceOptions {
  subscriptions: Subscriptions;
  verifier: TokenVerifier;
  /** The server's one error mask: what a client may see of a failure. */
  maskError: MaskError;
  logger: Logger;
}

export interface FeedService {
  readonly definition: ServiceDefinition;
  readonly implementation: UntypedServiceImplementation;
  /** Ends every open stream with UNAVAILABLE (server shutting down). */
  closeAll(): void;
  /** Feed calls open now: each is one connection's one subscription. */
  openCalls(): number;
}

type FeedCall = ServerWritableStream<FeedRequest, FeedResponse>;

export function createFeedService(options: FeedServiceOptions): FeedService {
  const { subscriptions, verifier, maskError } = options;
  const open = new Map<FeedCall, PullQueue<SubscriptionItem>>();
  /** Calls served so far: `connection: "grpc-<n>"` on a call's log lines. */
  let calls = 0;
  /** Set by `closeAll`: a call still opening then is ended as the open ones were. */
  let closing = false;
  const shuttingDown = { code: status.UNAVAILABLE, details: 'server shutting down: reconnect (with `since`) elsewhere' };

  const fail = (call: FeedCall, error: unknown): void => {
    call.emit('error', toServiceError(error, maskError));
  };

  async function serveFeed(call: FeedCall): Promise<void> {
    let queue: PullQueue<SubscriptionItem>;
    try {
      const principal = principalOf(call.metadata, verifier);
      queue = await subscriptions.open({ principal, userName: call.request.userName, since: call.request.since, transport: 'grpc' });
    } catch (error) {
      return fail(call, error);
    }
    if (call.cancelled || closing) {
      // Opening took Redis round trips after the SUBSCRIBE; the server may have begun to stop meanwhile.
      if (closing && !call.cancelled) call.emit('error', shuttingDown);
      await queue.return();
      return;
    }
    open.set(call, queue);
    const log = bound(options.logger, { connection: `grpc-${++calls}` });
    log.debug?.('herald: gRPC Feed call opened');
    call.once('cancelled', () => void queue.return());
    try {
      for await (const item of queue) {
        // The feed opens no inbox subscription, so no read-state change reaches it.
        if ('readUpTo' in item) continue;
        const response: FeedResponse =
          'gap' in item
            ? { historyGap: { reason: item.gap } }
            : {
                notification: {
                  id: item.id,
                  text: item.text,
                  timestamp: item.timestamp,
                  audience: toGrpcAudience(item.audience),
                  sender: item.sender,
                  ...(item.category === undefined ? {} : { category: item.category }),
                  ...(item.critical === true ? { critical: true } : {}),
                },
              };
        if (!call.write(response)) await Promise.race([once(call, 'drain'), once(call, 'cancelled')]);
        if (call.cancelled) break;
      }
      if (!call.cancelled) call.end();
    } catch (error) {
      if (!call.cancelled) fail(call, error);
    } finally {
      log.debug?.(call.cancelled ? 'herald: gRPC Feed call cancelled' : 'herald: gRPC Feed call ended');
      open.delete(call);
      await queue.return();
    }
  }

  return {
    definition: loadHeraldProto().NotificationFeed.service,
    implementation: { feed: (call: FeedCall) => void serveFeed(call) },
    closeAll() {
      closing = true;
      for (const [call, queue] of open) {
        call.emit('error', shuttingDown);
        void queue.return();
      }
      open.clear();
    },
    openCalls: () => open.size,
  };
}
