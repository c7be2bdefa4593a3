/**
 * Herald's two gRPC servers: the feed (beside the subscribe server) and the publisher
 * (beside the publish server), each on its own port.
 */
import type { TokenVerifier } from '../auth/index.js';
import { createErrorMask } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { HeraldServer } from '../common/server.js';
import type { GrpcKeepalive } from '../config/index.js';
import type { HeraldMetrics } from '../common/metrics.js';
import type { Sender } from '../core/send.js';
import type { Subscriptions } from '../core/subscriptions.js';
import { createFeedService } from '../transports/grpc/feed-service.js';
import { createPublishService } from '../transports/grpc/publish-service.js';
import { createGrpcServer } from '../transports/grpc/server.js';

interface CommonOptions {
  verifier: TokenVerifier;
  keepalive: GrpcKeepalive;
  /** Hides internal error messages (`HeraldConfig.production`). */
  production: boolean;
  /** On `stop()`, how long calls in flight may take before they are cut (`HeraldConfig.shutdownDrainMs`). */
  drainMs: number;
  /** Whether the broker is ready: the servers' gRPC health status. */
  isReady: () => boolean;
  logger: Logger;
}

/** `NotificationFeed` over the subscribe server's own {@link Subscriptions} (its observer map). */
export function createFeedGrpcServer(options: CommonOptions & { subscriptions: Subscriptions; metrics: HeraldMetrics }): HeraldServer {
  const service = createFeedService({ ...options, maskError: createErrorMask(options) });
  // A Feed call is both a connection and its one subscription.
  options.metrics.connections('grpc', service.openCalls);
  options.metrics.subscriptions('grpc', service.openCalls);
  return createGrpcServer({
    services: [service],
    keepalive: options.keepalive,
    onStop: () => service.closeAll(),
    drainMs: options.drainMs,
    isReady: options.isReady,
    logger: options.logger,
  });
}

/** `NotificationPublisher` over the publish server's own {@link Sender}. */
export function createPublishGrpcServer(options: CommonOptions & { sender: Sender }): HeraldServer {
  return createGrpcServer({
    services: [createPublishService({ ...options, maskError: createErrorMask(options) })],
    keepalive: options.keepalive,
    drainMs: options.drainMs,
    isReady: options.isReady,
    logger: options.logger,
  });
}
