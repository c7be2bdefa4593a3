/**
 * GraphQL over HTTP for the publish server, on graphql-http (the GraphQL over HTTP
 * spec's reference server): no GraphiQL, no Fetch API objects per request, documents
 * parsed and validated once per text. Yoga serves the subscribe server, where GraphiQL
 * lives; the publish server is a hot path for other services, and a request here costs
 * a fraction of one through Yoga (`npm run bench` measures both).
 *
 * Authenticates each request from its `Authorization` header: a missing header leaves
 * the principal unset (resolvers that need one say so), a bad one is answered with 401
 * before anything executes.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GraphQLError, type GraphQLSchema, type ValidationRule } from 'graphql';
import { createHandler, type Request as HttpRequest, type Response as HttpResponse } from 'graphql-http';
import { AuthenticationError, principalFromHeader, type TokenVerifier } from '../auth/index.js';
import { ErrorCode, isClientFacing, UNEXPECTED_ERROR_MESSAGE } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { createDocumentCache } from './documents.js';
import type { HeraldContext } from './schema.js';

export interface GraphQLOverHttpOptions {
  schema: GraphQLSchema;
  verifier: TokenVerifier;
  /** Rules added to GraphQL's own validation. */
  validationRules: readonly ValidationRule[];
  /** Hides the messages of unexpected errors from clients. */
  production: boolean;
  logger: Logger;
}

type NodeRequest = HttpRequest<IncomingMessage, undefined>;
/** graphql-http wants a context with an index signature; an interface has none. */
type Context = HeraldContext & Record<PropertyKey, unknown>;

export function createGraphQLOverHttpHandler(options: GraphQLOverHttpOptions): (request: IncomingMessage, response: ServerResponse) => void {
  const { schema, verifier, production, logger } = options;
  const documents = createDocumentCache(schema, options.validationRules);

  const handle = createHandler<IncomingMessage, undefined, Context>({
    schema,
    onSubscribe: (_request, params) => {
      const prepared = documents.prepare(params.query);
      if (prepared.errors) return prepared.errors;
      return {
        schema,
        document: prepared.document,
        operationName: params.operationName ?? null,
        variableValues: params.variables ?? null,
      };
    },
    context: (request) => authenticate(request, verifier),
    formatError: (error) => {
      if (isClientFacing(error)) return error;
      const original = error instanceof GraphQLError ? error.originalError : undefined;
      logger.error(`herald: unexpected error: ${original?.stack ?? error.stack ?? error.message}`);
      if (!production) return error;
      return new GraphQLError(UNEXPECTED_ERROR_MESSAGE, { path: (error as GraphQLError).path, extensions: { code: 'INTERNAL_SERVER_ERROR' } });
    },
  });

  return (request, response) => {
    handle({
      method: request.method ?? 'GET',
      url: request.url ?? '/',
      headers: request.headers,
      body: () => readBody(request),
      raw: request,
      context: undefined,
    }).then(
      ([body, init]) => {
        response.writeHead(init.status, init.statusText, init.headers).end(body);
      },
      (error: unknown) => {
        logger.error(`herald: GraphQL over HTTP failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
        if (!response.headersSent) {
          response.writeHead(500, { 'Content-Type': 'application/json; charset=utf-8' });
        }
        response.end(JSON.stringify({ errors: [{ message: production ? UNEXPECTED_ERROR_MESSAGE : String(error), extensions: { code: 'INTERNAL_SERVER_ERROR' } }] }));
      },
    );
  };
}

/** The request's principal, or a 401 that names what was wrong with its token. */
function authenticate(request: NodeRequest, verifier: TokenVerifier): Context | HttpResponse {
  try {
    return { principal: principalFromHeader(verifier, request.raw.headers.authorization) };
  } catch (error) {
    if (!(error instanceof AuthenticationError)) throw error;
    return [
      JSON.stringify({ errors: [{ message: error.message, extensions: { code: ErrorCode.Unauthenticated } }] }),
      { status: 401, statusText: 'Unauthorized', headers: { 'content-type': 'application/json; charset=utf-8' } },
    ];
  }
}

/** The whole body as text (the HTTP edge has already bounded its length). */
function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    request.once('error', reject);
  });
}
