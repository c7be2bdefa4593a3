/**
 * The publish server: `sendNotification` and `sendNotifications` over HTTP POST
 * (graphql-http), `/healthz` and `/readyz`.
 * It holds no subscriptions; it meets the subscribe servers only in the broker.
 */
import { OperationTypeNode } from 'graphql';
import { principalFromHeader, PUBLISH_SCOPE, type TokenVerifier } from '../auth/index.js';
import type { Broker } from '../broker/types.js';
import type { Namer } from '../names/index.js';
import type { Logger } from '../common/logger.js';
import type { HeraldServer } from '../common/server.js';
import type { HeraldConfig } from '../config/index.js';
import { createDocumentCache } from '../graphql/documents.js';
import { createGraphQLHttpHandler } from '../http/graphql-http.js';
import { createValidationRules } from '../graphql/rules.js';
import { buildSchema } from '../graphql/schema.js';
import { createHttpEdge, createRefusedOriginLog, listen, shutdown } from '../http/edge.js';
import { createPublishResolvers } from './resolvers.js';
import { createSender, type Sender } from './send.js';

/**
 * The settings the publish server takes from config, each documented (with its default)
 * there. A mutation cut off by `shutdownDrainMs` may have been sent.
 */
export type PublishSettings = Pick<HeraldConfig, 'limits' | 'corsOrigins' | 'corsLocalhost' | 'idempotencyWindowMs' | 'shutdownDrainMs' | 'production' | 'introspection'>;

export interface PublishServerOptions extends PublishSettings {
  /** Carries notifications out. */
  broker: Broker;
  verifier: TokenVerifier;
  namer: Namer;
  logger: Logger;
}

export interface PublishServer extends HeraldServer {
  /** Sends notifications, for other transports (gRPC). */
  readonly sender: Sender;
}

export function createPublishServer(options: PublishServerOptions): PublishServer {
  const { broker, limits, verifier, logger, production } = options;
  let stopping = false;
  const sender = createSender({
    broker,
    namer: options.namer,
    maxTextLength: limits.maxTextLength,
    idempotencyWindowMs: options.idempotencyWindowMs,
  });
  const schema = buildSchema({ broker, namer: options.namer, resolvers: createPublishResolvers(sender) });
  // At most 8 MiB of documents (`DEFAULT_DOCUMENT_CACHE_BYTES`), only those of authenticated requests.
  const documents = createDocumentCache({
    schema,
    maxTokens: limits.maxQueryTokens,
    validationRules: createValidationRules({
      maxDepth: limits.maxQueryDepth,
      maxAliases: limits.maxQueryAliases,
      introspection: options.introspection,
      operations: [OperationTypeNode.QUERY, OperationTypeNode.MUTATION],
      elsewhere: 'subscribe on the subscribe server',
      mutationsElsewhere: { markNotificationsRead: 'a user marks notifications read on the subscribe server' },
    }),
  });
  const http = createHttpEdge({
    corsOrigins: options.corsOrigins,
    corsLocalhost: options.corsLocalhost,
    onRefusedOrigin: createRefusedOriginLog(logger),
    maxBodyBytes: limits.maxMessageBytes,
    // A publisher's batch needs more room than anyone else's request; its token is
    // checked from the headers, before a byte of the body is read.
    largerBody: {
      bytes: limits.maxBatchBytes,
      variable: 'MAX_BATCH_BYTES',
      allows: (request) => {
        try {
          return principalFromHeader(verifier, request.headers.authorization)?.scopes.has(PUBLISH_SCOPE) ?? false;
        } catch {
          return false; // refused with 401 once the request reaches GraphQL
        }
      },
    },
    isReady: () => !stopping && broker.isReady(),
    graphql: createGraphQLHttpHandler({ schema, verifier, documents, production, logger }),
  });
  return {
    sender,
    start: (port, host) => listen(http, port, host),
    stop() {
      // /readyz answers 503 from now on, so a load balancer sends nothing new here.
      stopping = true;
      return shutdown(http, options.shutdownDrainMs);
    },
  };
}
