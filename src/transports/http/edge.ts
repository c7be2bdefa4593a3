/**
 * The HTTP edge both servers put in front of GraphQL: origin allowlist (CORS), request
 * body limit, `/healthz` and `/readyz`. Every refusal is JSON that names the rule.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { FailureCode } from '../../common/failures.js';
import { escapeControlCharacters } from '../../common/unsafe-text.js';
import type { StaticPages } from './pages.js';

export interface HttpEdgeOptions {
  /** Which browser origins may talk to the server (`CORS_ORIGINS`): {@link createOriginPolicy}. */
  origins: OriginPolicy;
  /**
   * How long a kept-alive connection may stay idle between requests (`HTTP_KEEPALIVE_MS`);
   * the server announces it in each response's `Keep-Alive` header. @default 5000 (Node's)
   */
  idleTimeoutMs?: number;
  /** Largest request body, in bytes (`MAX_MESSAGE_BYTES`); a bigger one gets 413 unread. */
  maxBodyBytes: number;
  /**
   * A larger body limit for the requests `allows` picks from their headers alone (the
   * publish server: a verified token with the publish scope). @default none
   */
  largerBody?: BodyLimit & { allows(request: IncomingMessage): boolean };
  /** Whether the server can do its work right now; `/readyz` answers 503 while false. */
  isReady: () => boolean;
  /** Serves `/graphql` once the edge has let the request through. */
  graphql: (request: IncomingMessage, response: ServerResponse) => void;
  /** Static pages beside GraphQL (the playground's files, the development inbox page). @default none */
  pages?: readonly StaticPages[];
}

export const GRAPHQL_PATH = '/graphql';

/** A request body limit and the variable that sets it. */
export interface BodyLimit {
  readonly bytes: number;
  readonly variable: string;
}

/** Decides whether a browser `Origin` may talk to this server. */
export interface OriginPolicy {
  /** True when `origin` is absent (not a browser), the server's own, or allowlisted. */
  allows(origin: string | undefined, host: string | undefined): boolean;
  /** True when `origin` is on the allowlist (so CORS headers are sent for it). */
  isListed(origin: string): boolean;
}

/** A local development origin: plain HTTP on localhost or 127.0.0.1, any port. */
const LOCAL_ORIGIN = /^http:\/\/(localhost|127\.0\.0\.1)(:\d{1,5})?$/;

/** What a refused browser is told (in the body of its 403, HTTP or WebSocket upgrade). */
export function originRefusal(origin: string | undefined): string {
  return `origin ${origin} is not allowed: the server's CORS_ORIGINS must list it (comma-separated exact origins, e.g. CORS_ORIGINS=${origin})`;
}

export interface OriginPolicyOptions {
  /** Whether any `http://localhost:<port>` and `http://127.0.0.1:<port>` origin is allowed too (development). @default false */
  localhost?: boolean;
  /** Told each origin the policy refuses (to log it). @default nothing */
  onRefused?: (origin: string) => void;
}

/** The policy of `corsOrigins` (`CORS_ORIGINS`), for HTTP and WebSocket upgrades alike. */
export function createOriginPolicy(corsOrigins: readonly string[], options: OriginPolicyOptions = {}): OriginPolicy {
  const corsLocalhost = options.localhost ?? false;
  const onRefused = options.onRefused ?? (() => undefined);
  const listed = new Set(corsOrigins);
  const sameHost = (origin: string, host: string | undefined): boolean => {
    try {
      return host !== undefined && new URL(origin).host === host;
    } catch {
      return false;
    }
  };
  return {
    isListed: (origin) => listed.has(origin) || (corsLocalhost && LOCAL_ORIGIN.test(origin)),
    allows(origin, host) {
      if (origin === undefined || listed.has(origin) || (corsLocalhost && LOCAL_ORIGIN.test(origin)) || sameHost(origin, host)) return true;
      onRefused(origin);
      return false;
    },
  };
}

export function createHttpEdge(options: HttpEdgeOptions): Server {
  const { origins } = options;
  const messageLimit: BodyLimit = { bytes: options.maxBodyBytes, variable: 'MAX_MESSAGE_BYTES' };
  const { largerBody } = options;
  const server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    const origin = request.headers.origin;
    if (!origins.allows(origin, request.headers.host)) {
      // No CORS header for a refused origin, not even on the refusal: a reflected origin
      // is what scanners flag, and the page has no need to read why — the server's log
      // says so, naming CORS_ORIGINS (the policy logged it), and so does this body to a
      // client that is not a browser.
      response.setHeader('Vary', 'Origin');
      return sendError(response, 403, 'FORBIDDEN', originRefusal(origin));
    }
    response.setHeader('Vary', 'Origin');
    if (origin !== undefined && origins.isListed(origin)) {
      // Only an allowlisted origin is ever echoed: never an arbitrary one with credentials.
      response.setHeader('Access-Control-Allow-Origin', origin);
      response.setHeader('Access-Control-Allow-Credentials', 'true');
      if (request.method === 'OPTIONS') {
        response.writeHead(204, {
          'Access-Control-Allow-Methods': 'GET, POST, OPTIONS',
          'Access-Control-Allow-Headers': 'Authorization, Content-Type, Accept, Last-Event-ID',
          'Access-Control-Max-Age': '600',
        });
        response.end();
        return;
      }
    }
    switch (path) {
      case '/healthz':
        return sendJson(response, 200, { status: 'ok' });
      case '/readyz':
        return options.isReady()
          ? sendJson(response, 200, { status: 'ready' })
          : sendJson(response, 503, { status: 'not ready', reason: 'the broker (Redis) is unavailable' });
      case GRAPHQL_PATH:
        if (request.method === 'POST') {
          const length = request.headers['content-length'];
          if (length === undefined) {
            return sendError(response, 411, 'BAD_REQUEST', 'a POST needs a Content-Length header');
          }
          const limit = largerBody?.allows(request) ? largerBody : messageLimit;
          if (Number(length) > limit.bytes) {
            return sendError(response, 413, 'LIMIT_EXCEEDED', `request body is larger than ${limit.bytes} bytes (${limit.variable})`);
          }
        }
        return options.graphql(request, response);
      default:
        if (options.pages?.some((pages) => pages.serve(request, response, path ?? '/'))) return;
        return sendError(response, 404, 'NOT_FOUND', `no route ${path}: use ${GRAPHQL_PATH}, /healthz or /readyz`);
    }
  });
  if (options.idleTimeoutMs !== undefined) server.keepAliveTimeout = options.idleTimeoutMs;
  return server;
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8' });
  response.end(JSON.stringify(body));
}

/**
 * A refusal with a code of the failure table; `status` is the table's, or a more precise
 * one (411, 413). `message` may quote the request (its origin, its path), so it is escaped.
 */
function sendError(response: ServerResponse, status: number, code: FailureCode, message: string): void {
  sendJson(response, status, { errors: [{ message: escapeControlCharacters(message), extensions: { code } }] });
}
