/**
 * GraphQL over HTTP for the publish server, on graphql-http (the GraphQL over HTTP
 * spec's reference server): no GraphiQL, no Fetch API objects per request, documents
 * parsed and validated once per text. Yoga serves the subscribe server, where GraphiQL
 * lives; the publish server is a hot path for other services, and a request here costs
 * a fraction of one through Yoga (`npm run bench` measures both).
 *
 * Authenticates each request from its `Authorization` header before its document is
 * prepared: a missing header leaves the principal unset (resolvers that need one say
 * so), a bad one is answered with 401 before anything is parsed. Only an authenticated
 * request's document is kept in the cache. A malformed request (not JSON, not an object,
 * a parameter of the wrong type) is a 400 with code `BAD_REQUEST` naming what is wrong.
 */
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import { createHandler, type OperationArgs, type Request as HttpRequest, type Response as HttpResponse } from 'graphql-http';
import { AuthenticationError } from '../../auth/index.js';
import type { MaskError } from '../../common/errors.js';
import { OperationRefusal, type OperationPipeline } from '../../graphql/operation.js';
import { BadRequestError, paramsFromJson, paramsFromSearch, type OperationParams } from '../../graphql/params.js';
import type { HeraldContext } from '../../graphql/schema.js';
import { refusal, type Refusal } from './refusal.js';

export interface GraphQLHttpOptions {
  /** Authenticates and prepares every operation, with the server's one error mask (`graphql/operation.ts`). */
  pipeline: OperationPipeline;
}

type NodeRequest = HttpRequest<IncomingMessage, undefined>;
/** graphql-http wants a context with an index signature; an interface has none. */
type Context = HeraldContext & Record<PropertyKey, unknown>;

const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8' };

export function createGraphQLHttpHandler(options: GraphQLHttpOptions): (request: IncomingMessage, response: ServerResponse) => void {
  const { pipeline } = options;
  const { schema, maskError } = pipeline;

  const handle = createHandler<IncomingMessage, undefined, Context>({
    schema,
    parseRequestParams: (request) => readParams(request, maskError),
    onSubscribe: (request, params) => {
      const principal = pipeline.authenticate(request.raw.headers.authorization);
      if (principal instanceof AuthenticationError) return answer(refusal(principal, maskError));
      const operation = pipeline.prepare(params, principal);
      if (operation instanceof OperationRefusal) return [...operation.errors];
      // A plain mutation runs compiled (graphql-http refuses a mutation over GET after this
      // callback, so only a POST may skip it); undefined leaves it to `execute`.
      const direct = request.method === 'POST' ? pipeline.compiled(operation)?.(operation.args.variableValues, operation.args.contextValue) : undefined;
      if (direct !== undefined) return direct;
      // The context is Herald's; graphql-http's type asks for an index signature it never reads.
      return operation.args as OperationArgs<Context>;
    },
    formatError: maskError,
  });

  return (request, response) => {
    handle({
      method: request.method ?? 'GET',
      url: request.url ?? '/',
      headers: request.headers,
      body: null, // read by `readParams`, once it knows the request is well formed
      raw: request,
      context: undefined,
    }).then(
      ([body, init]) => {
        response.writeHead(init.status, init.statusText, init.headers).end(body);
      },
      (error: unknown) => {
        const refused = refusal(error, maskError);
        if (!response.headersSent) response.writeHead(refused.status, JSON_HEADERS);
        response.end(refused.body);
      },
    );
  };
}

/**
 * The request's parameters, or the answer to a malformed request: 405 for another
 * method, 415 for a body that is not JSON by its type, 400 naming what is wrong.
 */
async function readParams(request: NodeRequest, maskError: MaskError): Promise<OperationParams | HttpResponse> {
  let params: OperationParams;
  try {
    if (request.method === 'GET') {
      params = paramsFromSearch(new URL(request.url, 'http://herald').searchParams);
    } else if (request.method === 'POST') {
      const mediaType = (request.raw.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
      if (mediaType !== 'application/json') {
        return answer(refusal(new BadRequestError('send the request as "Content-Type: application/json"'), maskError), 415);
      }
      params = paramsFromJson(await readBody(request.raw));
    } else {
      return [null, { status: 405, statusText: 'Method Not Allowed', headers: { allow: 'GET, POST' } }];
    }
  } catch (error) {
    if (error instanceof BadRequestError) return answer(refusal(error, maskError));
    throw error;
  }
  return params;
}

/** A refusal as graphql-http's response; `status` overrides the failure kind's (415 for a body of the wrong type). */
function answer(refused: Refusal, status = refused.status): HttpResponse {
  return [refused.body, { status, statusText: STATUS_CODES[status] ?? '', headers: JSON_HEADERS }];
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
