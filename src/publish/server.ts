/**
 * The publish server: `sendNotification` and `sendNotifications` over HTTP POST
 * (graphql-http), `/healthz` and `/readyz`.
 * It holds no subscriptions; it meets the subscribe servers only in the broker.
 */
import { OperationTypeNode } from 'graphql';
import type { TokenVerifier } from '../auth/index.js';
import type { Broker } from '../broker/types.js';
import type { ChannelNamer } from '../channels/index.js';
import type { Logger } from '../common/logger.js';
import type { HeraldServer } from '../common/server.js';
import type { Limits } from '../config/index.js';
import { createGraphQLOverHttpHandler } from '../graphql/over-http.js';
import { createValidationRules } from '../graphql/rules.js';
import { buildSchema } from '../graphql/schema.js';
import { createHttpEdge, listen, shutdown } from '../http/edge.js';
import { createPublishResolvers } from './resolvers.js';
import { createSender, type Sender } from './send.js';

export interface PublishServerOptions {
  /** Carries notifications out. */
  broker: Broker;
  verifier: TokenVerifier;
  channels: ChannelNamer;
  limits: Limits;
  /** Origins allowed besides the server's own (`CORS_ORIGINS`). */
  corsOrigins: readonly string[];
  /** How long an `idempotencyKey` is remembered, in ms. @default 600000 */
  idempotencyWindowMs?: number;
  /**
   * On `stop()`, how long requests in flight may take to finish before their
   * connections are cut (`SHUTDOWN_DRAIN_MS`). A mutation cut off may have been sent.
   * @default 10000 (ms)
   */
  shutdownDrainMs?: number;
  /** Hides internal error messages. @default false */
  production?: boolean;
  /** @default console */
  logger?: Logger;
}

export interface PublishServer extends HeraldServer {
  /** Sends notifications, for other transports (gRPC). */
  readonly sender: Sender;
}

export function createPublishServer(options: PublishServerOptions): PublishServer {
  const { broker, limits } = options;
  const logger = options.logger ?? console;
  let stopping = false;
  const sender = createSender({
    broker,
    channels: options.channels,
    maxTextLength: limits.maxTextLength,
    idempotencyWindowMs: options.idempotencyWindowMs ?? 600_000,
  });
  const schema = buildSchema({ broker, channels: options.channels, resolvers: createPublishResolvers(sender) });
  const http = createHttpEdge({
    corsOrigins: options.corsOrigins,
    maxBodyBytes: limits.maxMessageBytes,
    isReady: () => !stopping && broker.isReady(),
    graphql: createGraphQLOverHttpHandler({
      schema,
      verifier: options.verifier,
      validationRules: createValidationRules({
        maxDepth: limits.maxQueryDepth,
        maxAliases: limits.maxQueryAliases,
        operations: [OperationTypeNode.QUERY, OperationTypeNode.MUTATION],
        elsewhere: 'subscribe on the subscribe server',
      }),
      production: options.production ?? false,
      logger,
    }),
  });
  return {
    sender,
    start: (port, host) => listen(http, port, host),
    stop() {
      // /readyz answers 503 from now on, so a load balancer sends nothing new here.
      stopping = true;
      return shutdown(http, options.shutdownDrainMs ?? 10_000);
    },
  };
}
