/**
 * The subscribe server: GraphQL subscriptions over WebSocket and SSE, queries and
 * GraphiQL (Yoga), `/healthz` and `/readyz`, all on one port, all fed by one observer map
 * and one document cache.
 */
import { OperationTypeNode } from 'graphql';
import type { TokenVerifier } from '../auth/index.js';
import type { Broker } from '../broker/types.js';
import type { Namer } from '../names/index.js';
import { createErrorMask } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { HeraldServer } from '../common/server.js';
import { createTurnEnd } from '../common/timers.js';
import type { HeraldConfig } from '../config/index.js';
import type { HeraldMetrics } from '../common/metrics.js';
import { createDocumentCache } from '../graphql/documents.js';
import { createOperationPipeline } from '../graphql/operation.js';
import { createYogaHandler } from '../transports/http/yoga.js';
import { createValidationRules } from '../graphql/rules.js';
import { buildSchema } from '../graphql/schema.js';
import { createHttpEdge, createOriginPolicy } from '../transports/http/edge.js';
import { listen, shutdown } from '../transports/http/lifecycle.js';
import type { LedgerStore } from '../ledger/store.js';
import { recordLiveInto } from '../core/live-ledger.js';
import { createDeliveryResolvers } from '../graphql/delivery.js';
import { createStaticPages, type PageMount, type StaticPages } from '../transports/http/pages.js';
import { createPlaygroundAssets, PLAYGROUND_CSP, renderPlayground } from '../transports/http/playground.js';
import { createGraphQLRoute } from '../transports/http/negotiation.js';
import { createRefusedOriginLog } from '../transports/http/refused-origins.js';
import { createFanout } from '../graphql/render.js';
import { ObserverMap } from '../core/observers.js';
import { createSubscriptions, type Subscriptions } from '../core/subscriptions.js';
import { createSseTransport } from '../transports/sse.js';
import { attachWebSocketTransport } from '../transports/websocket/websocket.js';
import { Failure } from '../common/failures.js';
import type { SeenLive } from '../push/seen-live.js';
import { createPushResolvers, type PushStores } from '../graphql/push-resolvers.js';
import { createTokenRefreshResolvers } from '../graphql/token-refresh.js';
import { createPreferenceResolvers } from '../graphql/preference-resolvers.js';
import { createMemoryPreferenceStore, type PreferenceStore } from '../preferences/store.js';

/** The settings the subscribe server takes from config, each documented (with its default) there. */
export type SubscribeSettings = Pick<
  HeraldConfig,
  | 'limits'
  | 'corsOrigins'
  | 'corsLocalhost'
  | 'connectionInitTimeoutMs'
  | 'keepAliveMs'
  | 'httpKeepAliveMs'
  | 'production'
  | 'introspection'
  | 'playground'
  | 'shutdownDrainMs'
>;

export interface SubscribeServerOptions extends SubscribeSettings {
  /** Carries notifications in; the server sets itself as its sink. */
  broker: Broker;
  verifier: TokenVerifier;
  namer: Namer;
  /** Headers GraphiQL starts with, e.g. a dev token. @default none */
  graphiqlHeaders?: Record<string, string>;
  /**
   * Devices, topics and the seen-live marks of `WHEN_OFFLINE`, on Redis. Without it (the
   * in-process broker) the device and topic fields answer `SERVICE_UNAVAILABLE` and
   * subscriptions hear no topics.
   * @default none
   */
  pushStores?: { readonly stores: PushStores; readonly seenLive: SeenLive } | undefined;
  /**
   * The ledger: each notification delivered live here records one live event (counts by
   * transport), each read position moved records read events, and `delivery(id)` reads a
   * user's part. @default none: the ledger is off
   */
  ledger?: LedgerStore | undefined;
  /**
   * Users' preferences (on Redis beside the broker, or in memory with the in-process
   * broker): subscriptions and the inbox list drop what a user turned off `IN_APP`.
   * @default a store in this process's memory
   */
  preferences?: PreferenceStore | undefined;
  /**
   * Static pages served beside `/graphql` on the same origin, so they need no CORS (the
   * development inbox page, `examples/inbox`). @default none
   */
  pages?: readonly PageMount[];
  logger: Logger;
  /** The process's metrics: connections, subscriptions, channels, deliveries, slow-consumer closes. */
  metrics: HeraldMetrics;
}

export interface SubscribeServer extends HeraldServer {
  /** The server's observer map (channel → live subscriptions). */
  readonly observers: ObserverMap;
  /** Opens subscriptions on that observer map, for other transports (gRPC). */
  readonly subscriptions: Subscriptions;
}

const SAMPLE_SUBSCRIPTION = `# Notifications for the token's user arrive here as they are sent.
subscription {
  onNotificationReceived(userName: "alice") {
    id
    text
    timestamp
    audience
    sender
  }
}
`;

export function createSubscribeServer(options: SubscribeServerOptions): SubscribeServer {
  const { broker, verifier, limits, logger, production, keepAliveMs } = options;
  const { metrics } = options;
  const push = options.pushStores;
  const observers = new ObserverMap(broker, {
    logger,
    counts: metrics.counts,
    // Batched by the marks themselves (one script call per tenant every 100 ms at most),
    // never awaited by the delivery: a lost mark costs at most one push to a user who saw
    // the notification live.
    onDelivered: push && ((notification, tenant, users) => push.seenLive.mark(tenant, notification.id, users)),
    // One event per notification per server, batched like the marks.
    onLive: options.ledger && recordLiveInto(options.ledger),
  });
  metrics.channels(() => observers.channelCount);
  let stopping = false;
  const preferences = options.preferences ?? createMemoryPreferenceStore();
  const preferencesOf = async (principal: { readonly tenant: string; readonly name: string }) => preferences.readWithDefaults(principal.tenant, principal.name);
  const subscriptions = createSubscriptions({
    preferencesOf,
    observers,
    broker,
    namer: options.namer,
    maxQueued: limits.maxQueuedNotifications,
    maxBufferedBytes: limits.maxBufferedBytes,
    topicsOf:
      push &&
      (async (principal) => {
        try {
          return await push.stores.topics.following(principal.tenant, principal.name);
        } catch (error) {
          throw new Failure('SERVICE_UNAVAILABLE', 'Redis is unavailable: the topics followed cannot be read', { cause: error });
        }
      }),
  });
  const pushResolvers = createPushResolvers({
    stores: push?.stores,
    absent: new Failure('SERVICE_UNAVAILABLE', 'devices and topics are kept in Redis: run Herald with REDIS_URL'),
  });
  const preferenceResolvers = createPreferenceResolvers({ store: preferences, absent: new Failure('INTERNAL_SERVER_ERROR', 'no preference store'), broker, namer: options.namer });
  const schema = buildSchema({
    broker,
    namer: options.namer,
    ledger: options.ledger,
    preferencesOf,
    resolvers: {
      Query: { ...pushResolvers.Query, ...createDeliveryResolvers({ reader: options.ledger, view: 'user' }).Query, ...preferenceResolvers.Query },
      Mutation: { ...pushResolvers.Mutation, ...createTokenRefreshResolvers(verifier).Mutation, ...preferenceResolvers.Mutation },
    },
  });
  const maskError = createErrorMask({ production, logger });
  // One end-of-turn for the renderings of a turn's events and the frames held that turn.
  const afterThisTurn = createTurnEnd();
  /** One renderer for WebSocket and SSE: an event is rendered once per distinct operation. */
  const fanout = createFanout(schema, afterThisTurn, maskError);
  /**
   * One cache for WebSocket, SSE and Yoga: at most 8 MiB of documents
   * (`DEFAULT_DOCUMENT_CACHE_BYTES`), only those of authenticated requests.
   */
  const documents = createDocumentCache({
    schema,
    maxTokens: limits.maxQueryTokens,
    validationRules: createValidationRules({
      maxDepth: limits.maxQueryDepth,
      maxAliases: limits.maxQueryAliases,
      introspection: options.introspection,
      operations: [OperationTypeNode.QUERY, OperationTypeNode.SUBSCRIPTION, OperationTypeNode.MUTATION],
      elsewhere: 'send mutations to the publish server',
      mutationFields: ['registerDevice', 'removeDevice', 'follow', 'unfollow', 'markNotificationsRead', 'refreshToken', 'setPreference', 'setQuietHours', 'clearQuietHours'],
      mutationsElsewhere: 'send notifications through the publish server',
    }),
  });
  /** The one way in for an operation, whichever transport carries it. */
  const pipeline = createOperationPipeline({ schema, documents, maskError, verifier, fanout });
  const sse = createSseTransport({
    pipeline,
    subscriptions,
    maxBodyBytes: limits.maxMessageBytes,
    keepAliveMs,
    logger,
  });
  const yoga = createYogaHandler({
    pipeline,
    logger,
    graphiql: options.playground && {
      title: 'Herald',
      defaultQuery: SAMPLE_SUBSCRIPTION,
      ...(options.graphiqlHeaders ? { headers: JSON.stringify(options.graphiqlHeaders, null, 2) } : {}),
    },
    renderGraphiQL: renderPlayground,
  });
  // One policy for HTTP and WebSocket upgrades, so a refused origin is logged once for both.
  const origins = createOriginPolicy(options.corsOrigins, { localhost: options.corsLocalhost ?? false, onRefused: createRefusedOriginLog(logger) });
  const pages: StaticPages[] = [
    ...(options.playground ? [createPlaygroundAssets()] : []),
    ...(options.pages ? [createStaticPages(options.pages)] : []),
  ];
  const http = createHttpEdge({
    origins,
    maxBodyBytes: limits.maxMessageBytes,
    idleTimeoutMs: options.httpKeepAliveMs,
    isReady: () => !stopping && broker.isReady(),
    // An event stream for a subscription (or a client that prefers one), JSON for the rest.
    graphql: createGraphQLRoute({
      eventStream: sse.handle,
      json: (request, response, body) => {
        // The playground page loads from this origin only; an API answer is unaffected.
        if (request.method === 'GET') response.setHeader('Content-Security-Policy', PLAYGROUND_CSP);
        yoga(request, response, body);
      },
      maxBodyBytes: limits.maxMessageBytes,
      maxTokens: limits.maxQueryTokens,
    }),
    pages,
  });
  const websocket = attachWebSocketTransport(http, {
    pipeline,
    subscriptions,
    afterThisTurn,
    origins,
    maxMessageBytes: limits.maxMessageBytes,
    maxSubscriptionsPerConnection: limits.maxSubscriptionsPerConnection,
    maxBufferedBytes: limits.maxBufferedBytes,
    connectionInitTimeoutMs: options.connectionInitTimeoutMs,
    keepAliveMs,
    logger,
    counts: metrics.counts,
  });
  metrics.connections('websocket', websocket.connections);
  metrics.subscriptions('websocket', websocket.subscriptions);
  metrics.connections('sse', sse.connections);
  metrics.subscriptions('sse', sse.subscriptions);
  return {
    observers,
    subscriptions,
    start: (port, host) => listen(http, port, host),
    async stop() {
      stopping = true;
      // WebSockets close over the first half of the drain, so their clients reconnect to
      // the other instances a few at a time; SSE streams end at once (a reader reconnects
      // with its Last-Event-ID whenever it does).
      await Promise.all([websocket.close(options.shutdownDrainMs / 2), sse.close()]);
      await shutdown(http, options.shutdownDrainMs);
    },
  };
}
