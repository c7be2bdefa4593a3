/**
 * The publish server: `sendNotification` and `sendNotifications` over HTTP POST
 * (graphql-http), `/healthz` and `/readyz`.
 * It holds no subscriptions; it meets the subscribe servers only in the broker.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { OperationTypeNode } from 'graphql';
import { principalFromHeader, PUBLISH_SCOPE, type TokenVerifier } from '../auth/index.js';
import type { Broker } from '../broker/types.js';
import type { Namer } from '../names/index.js';
import { bound, type Logger } from '../common/logger.js';
import type { HeraldServer } from '../common/server.js';
import type { HeraldConfig } from '../config/index.js';
import { createErrorMask } from '../common/errors.js';
import { createDocumentCache } from '../graphql/documents.js';
import { createOperationPipeline } from '../graphql/operation.js';
import { createGraphQLHttpHandler } from '../transports/http/graphql-http.js';
import { createValidationRules } from '../graphql/rules.js';
import { buildSchema } from '../graphql/schema.js';
import { createHttpEdge, createOriginPolicy } from '../transports/http/edge.js';
import { listen, shutdown } from '../transports/http/lifecycle.js';
import { createRefusedOriginLog } from '../transports/http/refused-origins.js';
import { createPublishResolvers } from '../graphql/publish-resolvers.js';
import type { HeraldMetrics } from '../common/metrics.js';
import type { PushQueue } from '../push/queue.js';
import { Failure } from '../common/failures.js';
import { createPushResolvers } from '../graphql/push-resolvers.js';
import { createDefaultPreferenceResolvers, createPreferenceResolvers } from '../graphql/preference-resolvers.js';
import { createMemoryPreferenceStore, type PreferenceStore } from '../preferences/store.js';
import { createMeasuredSender, createSender, type Sender } from '../core/send.js';
import type { LedgerKeys } from '../ledger/keys.js';
import type { LedgerReader } from '../ledger/store.js';
import { createDeliveryResolvers } from '../graphql/delivery.js';
import { createDeliveryPage } from '../transports/http/delivery-page.js';

/**
 * The settings the publish server takes from config, each documented (with its default)
 * there. A mutation cut off by `shutdownDrainMs` may have been sent.
 */
export type PublishSettings = Pick<
  HeraldConfig,
  'limits' | 'corsOrigins' | 'corsLocalhost' | 'idempotencyWindowMs' | 'shutdownDrainMs' | 'httpKeepAliveMs' | 'production' | 'introspection'
>;

export interface PublishServerOptions extends PublishSettings {
  /** Carries notifications out. */
  broker: Broker;
  verifier: TokenVerifier;
  namer: Namer;
  /** Queues pushes (see `SenderOptions.pushQueue`). @default none: nothing is pushed */
  pushQueue?: PushQueue | undefined;
  /**
   * The ledger: each publish starts its notification's ledger (`SenderOptions.ledgerKeys`),
   * and `delivery(id)` reads it for a service of the tenant. @default none: the ledger is off
   */
  ledger?: { readonly keys: LedgerKeys; readonly reader: LedgerReader } | undefined;
  /**
   * Serves the ledger page at `/delivery/` (development only: never in
   * production), pre-filled with this service token when given. @default not served
   */
  deliveryPage?: { readonly serviceToken?: string | undefined } | undefined;
  /**
   * Where `setDefaultPreference` keeps a tenant's defaults: the subscribe server's store
   * (the same Redis, or the same memory in one process).
   * @default a store in this process's memory
   */
  preferences?: PreferenceStore | undefined;
  logger: Logger;
  /** The process's metrics: mutation latency by field and outcome, notifications published. */
  metrics: HeraldMetrics;
}

export interface PublishServer extends HeraldServer {
  /** Sends notifications, for other transports (gRPC). */
  readonly sender: Sender;
}

export function createPublishServer(options: PublishServerOptions): PublishServer {
  const { broker, limits, verifier, logger, production } = options;
  let stopping = false;
  const sender = createMeasuredSender(
    createSender({
      broker,
      namer: options.namer,
      maxTextLength: limits.maxTextLength,
      idempotencyWindowMs: options.idempotencyWindowMs,
      pushQueue: options.pushQueue,
      ledgerKeys: options.ledger?.keys,
    }),
    options.metrics,
  );
  const schema = buildSchema({
    broker,
    namer: options.namer,
    resolvers: {
      Mutation: {
        ...createPublishResolvers(sender).Mutation,
        ...createDefaultPreferenceResolvers(options.preferences ?? createMemoryPreferenceStore()).Mutation,
      },
      // The one schema has them; a user's push settings and preferences live on the subscribe server.
      Query: {
        ...createPushResolvers({ stores: undefined, absent: new Failure('WRONG_SERVER', 'ask the subscribe server for devices and topics') }).Query,
        ...createDeliveryResolvers({ reader: options.ledger?.reader, view: 'service' }).Query,
        ...createPreferenceResolvers({
          store: undefined,
          absent: new Failure('WRONG_SERVER', 'ask the subscribe server for preferences'),
          broker,
          namer: options.namer,
        }).Query,
      },
    },
  });
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
      mutationFields: ['sendNotification', 'sendNotifications', 'setDefaultPreference'],
      mutationsElsewhere: "send a user's own mutations (devices, topics, read state) to the subscribe server",
    }),
  });
  const http = createHttpEdge({
    origins: createOriginPolicy(options.corsOrigins, { localhost: options.corsLocalhost ?? false, onRefused: createRefusedOriginLog(logger) }),
    maxBodyBytes: limits.maxMessageBytes,
    idleTimeoutMs: options.httpKeepAliveMs,
    // A publisher's batch needs more room than anyone else's request; its token is
    // checked from the headers, before a byte of the body is read.
    largerBody: {
      bytes: limits.maxBatchBytes,
      variable: 'MAX_BATCH_BYTES',
      allows: (request) => {
        try {
          // Not counted here: the request is refused (and counted) once it reaches GraphQL.
          return principalFromHeader(verifier, request.headers.authorization, { counted: false })?.scopes.has(PUBLISH_SCOPE) ?? false;
        } catch {
          return false; // refused with 401 once the request reaches GraphQL
        }
      },
    },
    isReady: () => !stopping && broker.isReady(),
    // A development aid only: a production server serves nothing but its API.
    ...(options.deliveryPage && !production ? { pages: [createDeliveryPage(options.deliveryPage)] } : {}),
    graphql: withRequestIds(createGraphQLHttpHandler({ pipeline: createOperationPipeline({ schema, documents, maskError: createErrorMask({ production, logger }), verifier }) }), logger),
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

/** A caller's own `X-Request-Id`, if it is short and plain enough to log as it is. */
const REQUEST_ID = /^[\w.:-]{1,64}$/;

/**
 * `handle`, with each request's id (the caller's `X-Request-Id`, else this process's
 * `req-<n>`) on the debug line that says how it was answered.
 */
function withRequestIds(handle: (request: IncomingMessage, response: ServerResponse) => void, logger: Logger) {
  // Below LOG_LEVEL=debug nothing is written: no listener, clock or child logger per request.
  if (logger.debug === undefined) return handle;
  let requests = 0;
  return (request: IncomingMessage, response: ServerResponse): void => {
    const header = request.headers['x-request-id'];
    const id = typeof header === 'string' && REQUEST_ID.test(header) ? header : `req-${++requests}`;
    const started = performance.now();
    response.once('finish', () => {
      bound(logger, { request: id }).debug?.(`herald: ${request.method ?? 'GET'} /graphql answered ${response.statusCode} in ${(performance.now() - started).toFixed(1)} ms`);
    });
    handle(request, response);
  };
}
