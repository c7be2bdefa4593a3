/**
 * Which answer a GraphQL request on the subscribe server gets — an event stream (Herald's
 * SSE transport) or JSON (Yoga) — from its `Accept` header and, when the header leaves
 * both open, from its operation, as the GraphQL over HTTP spec has it: a query or a
 * mutation is answered with JSON, a subscription with a stream.
 *
 * Clients list both: urql's `fetchExchange` sends `application/graphql-response+json,
 * application/graphql+json, application/json, text/event-stream, multipart/mixed` with
 * every query and mutation, and expects JSON back (given a stream, `@urql/core` 6 printed
 * the data, then its process died with an `AbortError`). A stream is only the answer
 * to a subscription, or to a request that prefers `text/event-stream` — by q-value, then
 * by order — or names nothing else Herald can answer (graphql-sse, `EventSource`).
 *
 * Only a `text/event-stream` the client names counts for a stream: `*∕*` (fetch's and
 * curl's default) accepts JSON, and a subscription sent with it is told how to subscribe
 * instead of being held open on a stream it did not ask for.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { getOperationAST, parse, type DocumentNode } from 'graphql';
import { BadRequestError, paramsFromJson, paramsFromSearch, readBody, type OperationParams } from '../../graphql/params.js';

/** What a request's `Accept` header asks for. */
export type Negotiated =
  /** A stream whatever the operation: `text/event-stream` is preferred, or nothing else Herald serves is acceptable. */
  | 'event-stream'
  /** JSON; a subscription is refused with a message saying how to subscribe. */
  | 'json'
  /** Both are acceptable, JSON preferred: a stream for a subscription, JSON for anything else. */
  | 'by-operation';

/** The JSON media types Herald answers with (Yoga picks between them). */
const JSON_TYPES = ['application/graphql-response+json', 'application/json'] as const;
const EVENT_STREAM = 'text/event-stream';

/** One media range of an `Accept` header. */
interface MediaRange {
  readonly type: string;
  readonly subtype: string;
  /** Its weight, 0 to 1 (0: not acceptable). */
  readonly q: number;
  /** Where it stands in the header, from 0: among equal weights the first listed wins. */
  readonly position: number;
}

/** How a media type is accepted: its weight, and the position of the range that gave it. */
interface Acceptance {
  readonly q: number;
  readonly position: number;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;
const QVALUE = /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/;

/**
 * The media ranges of an `Accept` header (RFC 9110 §12.5.1), lower-cased; a malformed
 * range (no `/`, a bad token or a bad `q`) is skipped, as if it were not there.
 */
export function parseAccept(header: string): MediaRange[] {
  const ranges: MediaRange[] = [];
  for (const [position, part] of header.split(',').entries()) {
    const [mediaType = '', ...parameters] = part.split(';').map((piece) => piece.trim().toLowerCase());
    const [type = '', subtype = '', extra] = mediaType.split('/');
    if (extra !== undefined || !TOKEN.test(type) || !TOKEN.test(subtype) || (type === '*' && subtype !== '*')) continue;
    let q = 1;
    let valid = true;
    for (const parameter of parameters) {
      const [name, value = ''] = parameter.split('=').map((piece) => piece.trim());
      if (name !== 'q') continue;
      if (QVALUE.test(value)) q = Number(value);
      else valid = false;
    }
    if (valid) ranges.push({ type, subtype, q, position });
  }
  return ranges;
}

/**
 * How `ranges` accept `mediaType`: by the most specific range that matches it (the first
 * of those, if several do), with no wildcard when `explicitOnly`.
 */
function acceptanceOf(ranges: readonly MediaRange[], mediaType: string, explicitOnly: boolean): Acceptance {
  const [type, subtype] = mediaType.split('/');
  let best: MediaRange | undefined;
  let bestSpecificity = -1;
  for (const range of ranges) {
    const specificity =
      range.type === type && range.subtype === subtype ? 2 : explicitOnly ? -1 : range.type === type && range.subtype === '*' ? 1 : range.type === '*' ? 0 : -1;
    if (specificity > bestSpecificity) {
      best = range;
      bestSpecificity = specificity;
    }
  }
  return best === undefined ? { q: 0, position: Infinity } : { q: best.q, position: best.position };
}

/** The better of two acceptances: the higher weight, then the earlier position. */
function preferred(a: Acceptance, b: Acceptance): Acceptance {
  if (a.q !== b.q) return a.q > b.q ? a : b;
  return a.position <= b.position ? a : b;
}

/**
 * What `accept` (a request's `Accept` header) asks for. No header, or an empty one, is
 * `application/json` (GraphQL over HTTP §"Accept").
 */
export function negotiate(accept: string | undefined): Negotiated {
  if (accept === undefined || accept.trim() === '') return 'json';
  const ranges = parseAccept(accept);
  const stream = acceptanceOf(ranges, EVENT_STREAM, true);
  if (stream.q === 0) return 'json';
  const json = JSON_TYPES.map((type) => acceptanceOf(ranges, type, false)).reduce(preferred);
  if (json.q === 0 || preferred(stream, json) === stream) return 'event-stream';
  return 'by-operation';
}

/** The kind of operation a request would run, or undefined when its document does not say (a syntax error, no such operation). */
export function operationKind(operation: OperationParams, maxTokens: number): 'query' | 'mutation' | 'subscription' | undefined {
  let document: DocumentNode;
  try {
    // Bounded like every parse (MAX_QUERY_TOKENS), and without locations: only the kind is read.
    document = parse(operation.query, { maxTokens, noLocation: true });
  } catch {
    return undefined;
  }
  return getOperationAST(document, operation.operationName)?.operation;
}

/** A request's body, as read, and its GraphQL parameters when it is a well-formed GraphQL request. */
interface ReadRequest {
  /** Empty for a GET. */
  readonly body: Buffer;
  readonly operation: OperationParams | undefined;
}

export interface GraphQLRouteOptions {
  /**
   * Serves a request with an event stream (the SSE transport); `operation` is given when
   * the request has been read already.
   */
  eventStream(request: IncomingMessage, response: ServerResponse, operation?: OperationParams): void;
  /**
   * Serves a request with JSON (or GraphiQL, to a browser); `body` is given when the
   * request has been read already, and must not be read again.
   */
  json(request: IncomingMessage, response: ServerResponse, body?: Buffer): void;
  /** Largest POST body read, in bytes (`MAX_MESSAGE_BYTES`; the HTTP edge has checked Content-Length). */
  maxBodyBytes: number;
  /** `MAX_QUERY_TOKENS`: the bound of the parse that finds the operation's kind. */
  maxTokens: number;
}

/**
 * `/graphql` on the subscribe server: each request to the answer {@link negotiate} picks.
 * When that depends on the operation, the request is read once, here, and handed on
 * with what was read; a request that is not well formed goes to `json`, which says what
 * is wrong with it.
 */
export function createGraphQLRoute(options: GraphQLRouteOptions): (request: IncomingMessage, response: ServerResponse) => void {
  return (request, response) => {
    const negotiated = negotiate(request.headers.accept);
    if (negotiated === 'event-stream') return options.eventStream(request, response);
    if (negotiated === 'json') return options.json(request, response);
    readRequest(request, options.maxBodyBytes).then(
      ({ body, operation }) => {
        if (operation && operationKind(operation, options.maxTokens) === 'subscription') options.eventStream(request, response, operation);
        else options.json(request, response, body);
      },
      (error: unknown) => {
        if (!(error instanceof BadRequestError) || response.headersSent) return void response.destroy();
        // Past the Content-Length the edge let through: Node's parser stops that first, so this is a bound kept twice.
        response.writeHead(413, { 'Content-Type': 'application/json; charset=utf-8', Connection: 'close' });
        response.end(JSON.stringify({ errors: [{ message: error.message, extensions: { code: 'LIMIT_EXCEEDED' } }] }));
      },
    );
  };
}

/** Reads a request's body (at most `maxBodyBytes`, else a {@link BadRequestError}) and its GraphQL parameters, if it has well-formed ones. */
async function readRequest(request: IncomingMessage, maxBodyBytes: number): Promise<ReadRequest> {
  if (request.method === 'GET' || request.method === 'HEAD') {
    return { body: Buffer.alloc(0), operation: wellFormed(() => paramsFromSearch(new URL(request.url ?? '/', 'http://herald').searchParams)) };
  }
  const body = await readBody(request as AsyncIterable<Buffer>, maxBodyBytes);
  return { body, operation: request.method === 'POST' ? wellFormed(() => paramsFromJson(body.toString('utf8'))) : undefined };
}

/** The parameters `read` gives, or undefined for a malformed request (whose handler will say what is wrong). */
function wellFormed(read: () => OperationParams): OperationParams | undefined {
  try {
    return read();
  } catch (error) {
    if (error instanceof BadRequestError) return undefined;
    throw error;
  }
}
