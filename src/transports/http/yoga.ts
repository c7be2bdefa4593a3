/**
 * GraphQL over HTTP on the subscribe server, on GraphQL Yoga: queries, and GraphiQL when
 * it is on. Authenticates each request from its `Authorization` header before its
 * document is prepared: a missing header leaves the principal unset (resolvers that
 * need one say so), a bad one is refused with 401 before anything is parsed.
 *
 * Documents go through Herald's operation pipeline and its document cache (token limit, Herald's rules
 * first, kept only for an authenticated request), not Yoga's own parser and validation
 * cache, which would keep every document anyone sent. Every error leaves through
 * Herald's error mask. A subscription is refused here: Yoga's own event stream has no
 * `id:` and no resume, so subscriptions go over WebSocket or Herald's SSE transport.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GraphQLError, Kind, OperationTypeNode, type DocumentNode, type ExecutionResult } from 'graphql';
import { createYoga, isAsyncIterable, type Plugin, type YogaInitialContext, type YogaServerOptions } from 'graphql-yoga';
import { AuthenticationError, type Principal } from '../../auth/index.js';
import type { MaskError } from '../../common/errors.js';
import { FAILURES, type Failure } from '../../common/failures.js';
import type { Logger } from '../../common/logger.js';
import { OperationRefusal, type OperationPipeline } from '../../graphql/operation.js';
import type { HeraldContext } from '../../graphql/schema.js';
import { GRAPHQL_PATH } from './edge.js';

export interface YogaHandlerOptions {
  /** Authenticates and prepares every operation, with the server's one error mask (`graphql/operation.ts`). */
  pipeline: OperationPipeline;
  /** GraphiQL on `GET /graphql` from a browser; false to turn it off. */
  graphiql: YogaServerOptions<object, HeraldContext>['graphiql'];
  /** Renders the GraphiQL page (the offline playground). @default Yoga's, which loads from a CDN */
  renderGraphiQL?: YogaServerOptions<object, HeraldContext>['renderGraphiQL'];
  logger: Logger;
}

/** Serves one request; `body` when the request's body has been read already (it is not read again). */
export type NodeHandler = (request: IncomingMessage, response: ServerResponse, body?: Buffer) => void;

export { SUBSCRIBE_ELSEWHERE } from '../../graphql/operation.js';

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
  const { pipeline } = options;
  const { maskError } = pipeline;
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
      const principal = authenticate(pipeline, context.request);
      const query = typeof params.source === 'string' ? params.source : params.source.body;
      const operation = pipeline.prepare({ query, operationName: context.params.operationName }, principal, { streams: false });
      if (operation instanceof OperationRefusal) {
        // A refused operation (a subscription, or none to tell) is a refused request, with its failure's status.
        if (operation.stage === 'operation') throw withStatus(operation);
        refusals.set(context, operation.errors);
        setParsedDocument(placeholder(context.params.operationName));
        return;
      }
      setParsedDocument(operation.document);
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
    schema: pipeline.schema,
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
    context: ({ request }) => ({ principal: authenticate(pipeline, request) }),
  });
  return (request, response, body) => {
    // Yoga's Node adapter takes a body read before it from the request's `body`, as it
    // does behind Express' body parsers; an empty one would make it read the stream.
    if (body !== undefined && body.length > 0) Object.assign(request, { body });
    void yoga(request, response);
  };
}

/** The principal of a request's token, undefined without one; a bad token throws a 401. */
function authenticate(pipeline: OperationPipeline, request: Request): Principal | undefined {
  const principal = pipeline.authenticate(request.headers.get('authorization') ?? undefined);
  if (principal instanceof AuthenticationError) throw withStatus(principal);
  return principal;
}

/** `failure` as the error Yoga answers with its kind's status. */
function withStatus(failure: Failure): GraphQLError {
  return new GraphQLError(failure.message, { extensions: { code: failure.code, http: { status: FAILURES[failure.code].http } } });
}

function masked<R extends ExecutionResult>(result: R, maskError: MaskError): R {
  return result.errors ? { ...result, errors: result.errors.map(maskError) } : result;
}
