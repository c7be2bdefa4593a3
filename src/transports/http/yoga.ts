/**
 * GraphQL over HTTP on the subscribe server, on GraphQL Yoga: queries, and GraphiQL when
 * it is on. Authenticates each request from its `Authorization` header before its
 * document is prepared: a missing header leaves the principal unset (resolvers that
 * need one say so), a bad one is refused with 401 before anything is parsed.
 *
 * Documents go through Herald's {@link DocumentCache} (token limit, Herald's rules
 * first, kept only for an authenticated request), not Yoga's own parser and validation
 * cache, which would keep every document anyone sent. Every error leaves through
 * Herald's error mask. A subscription is refused here: Yoga's own event stream has no
 * `id:` and no resume, so subscriptions go over WebSocket or Herald's SSE transport.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { getOperationAST, GraphQLError, Kind, OperationTypeNode, type DocumentNode, type ExecutionResult, type GraphQLSchema } from 'graphql';
import { createYoga, isAsyncIterable, type Plugin, type YogaInitialContext, type YogaServerOptions } from 'graphql-yoga';
import { AuthenticationError, principalFromHeader, type Principal, type TokenVerifier } from '../../auth/index.js';
import { createErrorMask, type MaskError } from '../../common/errors.js';
import { FAILURES } from '../../common/failures.js';
import type { Logger } from '../../common/logger.js';
import type { DocumentCache } from '../../graphql/documents.js';
import type { HeraldContext } from '../../graphql/schema.js';
import { GRAPHQL_PATH } from './edge.js';

export interface YogaHandlerOptions {
  schema: GraphQLSchema;
  verifier: TokenVerifier;
  /** Parses, validates and (for authenticated requests) keeps documents. */
  documents: DocumentCache;
  /** GraphiQL on `GET /graphql` from a browser; false to turn it off. */
  graphiql: YogaServerOptions<object, HeraldContext>['graphiql'];
  /** Renders the GraphiQL page (the offline playground). @default Yoga's, which loads from a CDN */
  renderGraphiQL?: YogaServerOptions<object, HeraldContext>['renderGraphiQL'];
  /** Hides the messages of unexpected errors (and GraphQL's suggestions) from clients. */
  production: boolean;
  logger: Logger;
}

/** Serves one request; `body` when the request's body has been read already (it is not read again). */
export type NodeHandler = (request: IncomingMessage, response: ServerResponse, body?: Buffer) => void;

/** Told to a client that sends a subscription as a plain HTTP request. */
export const SUBSCRIBE_ELSEWHERE =
  'a subscription needs a stream: subscribe over WebSocket (subprotocol graphql-transport-ws) or over SSE (send "Accept: text/event-stream")';

/**
 * Stands in for a refused document between Yoga's parse and validate steps. It holds the
 * operation the request names, as Yoga looks for it right after parsing (and would
 * answer with its own error instead of the refusal's).
 */
function placeholder(operationName: string | undefined): DocumentNode {
  return {
    kind: Kind.DOCUMENT,
    definitions: [
      {
        kind: Kind.OPERATION_DEFINITION,
        operation: OperationTypeNode.QUERY,
        ...(operationName ? { name: { kind: Kind.NAME, value: operationName } } : {}),
        selectionSet: { kind: Kind.SELECTION_SET, selections: [{ kind: Kind.FIELD, name: { kind: Kind.NAME, value: '__typename' } }] },
      },
    ],
  };
}

export function createYogaHandler(options: YogaHandlerOptions): NodeHandler {
  const { verifier, documents } = options;
  const maskError = createErrorMask(options);
  const maskForYoga: MaskError = (error) => {
    const result = maskError(error);
    // Yoga answers a body it could not read (not JSON) with 400 only while the error's
    // `extensions.originalError` holds the parser's message, which quotes the body; the
    // mask drops it, so the 400 is kept by saying so in `http` instead.
    const http = result.extensions['http'];
    if (!(error instanceof GraphQLError) || error.extensions['originalError'] === undefined || typeof http !== 'object') return result;
    return new GraphQLError(result.message, { extensions: { ...result.extensions, http: { ...http, spec: false } } });
  };
  /** Why each refused request's document was refused, until its validate step reports it. */
  const refusals = new WeakMap<object, readonly GraphQLError[]>();

  const heraldDocuments: Plugin<YogaInitialContext> = {
    onParse({ context, params, setParsedDocument }) {
      const principal = authenticate(verifier, context.request);
      const prepared = documents.prepare(typeof params.source === 'string' ? params.source : params.source.body, { keep: principal !== undefined });
      if (prepared.errors) {
        refusals.set(context, prepared.errors);
        setParsedDocument(placeholder(context.params.operationName));
        return;
      }
      if (getOperationAST(prepared.document, context.params.operationName)?.operation === 'subscription') {
        throw new GraphQLError(SUBSCRIBE_ELSEWHERE, { extensions: { code: 'BAD_REQUEST', http: { status: FAILURES.BAD_REQUEST.http } } });
      }
      setParsedDocument(prepared.document);
    },
    // Every document here came from `prepare`, which has validated it.
    onValidate({ context, setResult }) {
      setResult(refusals.get(context) ?? []);
    },
    onResultProcess({ result, setResult }) {
      if (!isAsyncIterable(result)) setResult(Array.isArray(result) ? result.map((one) => masked(one, maskForYoga)) : masked(result, maskForYoga));
    },
  };

  const yoga = createYoga<object, HeraldContext>({
    schema: options.schema,
    graphqlEndpoint: GRAPHQL_PATH,
    cors: false, // the HTTP edge owns CORS
    landingPage: false,
    graphiql: options.graphiql,
    ...(options.renderGraphiQL ? { renderGraphiQL: options.renderGraphiQL } : {}),
    parserAndValidationCache: false,
    // Errors are masked once, by Herald's mask, as the result leaves (`onResultProcess`).
    maskedErrors: false,
    logging: { debug: () => undefined, info: () => undefined, warn: options.logger.warn, error: options.logger.error },
    plugins: [heraldDocuments],
    context: ({ request }) => ({ principal: authenticate(verifier, request) }),
  });
  return (request, response, body) => {
    // Yoga's Node adapter takes a body read before it from the request's `body`, as it
    // does behind Express' body parsers; an empty one would make it read the stream.
    if (body !== undefined && body.length > 0) Object.assign(request, { body });
    void yoga(request, response);
  };
}

/** The principal of a request's token, undefined without one; a bad token throws a 401. */
function authenticate(verifier: TokenVerifier, request: Request): Principal | undefined {
  try {
    return principalFromHeader(verifier, request.headers.get('authorization') ?? undefined);
  } catch (error) {
    if (!(error instanceof AuthenticationError)) throw error;
    throw new GraphQLError(error.message, { extensions: { code: 'UNAUTHENTICATED', http: { status: FAILURES.UNAUTHENTICATED.http } } });
  }
}

function masked<R extends ExecutionResult>(result: R, maskError: MaskError): R {
  return result.errors ? { ...result, errors: result.errors.map(maskError) } : result;
}
