/**
 * GraphQL over Server-Sent Events for the subscribe server, in the "distinct
 * connections" form that graphql-sse's client and GraphiQL speak: one request per
 * operation (GET with `query`/`variables` parameters, or POST with a JSON body),
 * answered with `event: next` per result and a final `event: complete`.
 *
 * Herald serves it itself, not through Yoga, so that each event carries the
 * notification's id as the SSE `id:` field and a reconnecting `EventSource` resumes
 * from its `Last-Event-ID` header. A request that goes away (aborted, socket died)
 * returns the subscription's iterator, releasing its channels.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  getOperationAST,
  GraphQLError,
  subscribe,
  type ExecutionResult,
  type GraphQLSchema,
  type ValidationRule,
} from 'graphql';
import { AuthenticationError, principalFromHeader, type Principal, type TokenVerifier } from '../auth/index.js';
import { ErrorCode, graphqlError, isClientFacing, UNEXPECTED_ERROR_MESSAGE } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { createDocumentCache } from '../graphql/documents.js';
import type { HeraldContext } from '../graphql/schema.js';

export interface SseTransportOptions {
  schema: GraphQLSchema;
  /** Rules added to GraphQL's own validation. */
  validationRules: readonly ValidationRule[];
  verifier: TokenVerifier;
  /** Largest POST body read, in bytes (the HTTP edge has checked Content-Length). */
  maxBodyBytes: number;
  /** Interval of `:` comment lines that keep proxies and dead-peer detection going, in ms. */
  keepAliveMs: number;
  /** Hides internal error messages. */
  production: boolean;
  logger: Logger;
}

/** True for a request that asks for an event stream. */
export function wantsEventStream(request: IncomingMessage): boolean {
  return (request.headers.accept ?? '').includes('text/event-stream');
}

interface OperationRequest {
  query: string;
  variables: Record<string, unknown> | undefined;
  operationName: string | undefined;
}

export function createSseTransport(options: SseTransportOptions) {
  const { schema, verifier, logger } = options;
  const documents = createDocumentCache(schema, options.validationRules);
  /** Each open stream's shutdown: its final events, then its end. */
  const streams = new Map<ServerResponse, () => void>();

  const mask = (error: unknown): GraphQLError => {
    if (isClientFacing(error)) return error;
    logger.error(`herald: SSE subscription failed: ${error instanceof Error ? error.stack : String(error)}`);
    return new GraphQLError(options.production ? UNEXPECTED_ERROR_MESSAGE : String(error instanceof Error ? error.message : error));
  };

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    let principal: Principal | undefined;
    try {
      principal = principalFromHeader(verifier, request.headers.authorization);
    } catch (error) {
      const message = error instanceof AuthenticationError ? error.message : 'token rejected';
      return sendErrors(response, 401, [new GraphQLError(message, { extensions: { code: ErrorCode.Unauthenticated } })]);
    }
    let operation: OperationRequest;
    try {
      operation = await readOperation(request, options.maxBodyBytes);
    } catch (error) {
      const message = String(error instanceof Error ? error.message : error);
      return sendErrors(response, 400, [new GraphQLError(message, { extensions: { code: ErrorCode.BadUserInput } })]);
    }
    const prepared = documents.prepare(operation.query);
    if (prepared.errors) return sendErrors(response, 400, prepared.errors);
    const { document } = prepared;
    if (!getOperationAST(document, operation.operationName)) {
      return sendErrors(response, 400, [new GraphQLError('cannot tell which operation to run: give operationName')]);
    }

    const lastEventId = request.headers['last-event-id'];
    let deliveredId: string | undefined;
    const contextValue: HeraldContext = {
      principal,
      lastEventId: typeof lastEventId === 'string' && lastEventId !== '' ? lastEventId : undefined,
      onDelivered: (id) => {
        deliveredId = id;
      },
    };
    response.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    // Some browsers hold a fetch until the first bytes arrive.
    response.write(':\n\n');
    const keepAlive = setInterval(() => response.write(':\n\n'), options.keepAliveMs);
    /** Set once nothing more may be written: the client went away, or the stream was shut down. */
    let gone = false;
    let iterator: AsyncIterator<ExecutionResult> | undefined;
    const onGone = (): void => {
      if (gone) return;
      gone = true;
      void iterator?.return?.();
    };
    response.once('close', onGone);
    streams.set(response, () => {
      if (gone) return;
      clearInterval(keepAlive);
      // The client reconnects and resumes where it was: the last `id:` it got is its cursor.
      writeEvent(response, 'next', { errors: [shuttingDown()] }, undefined);
      response.end('event: complete\ndata:\n\n');
      onGone();
    });
    try {
      const result = await subscribe({
        schema,
        document,
        contextValue,
        ...(operation.operationName ? { operationName: operation.operationName } : {}),
        ...(operation.variables ? { variableValues: operation.variables } : {}),
      });
      if (!(Symbol.asyncIterator in result)) {
        if (!gone) writeEvent(response, 'next', result, undefined);
      } else {
        iterator = result[Symbol.asyncIterator]();
        if (gone) await iterator.return?.();
        while (!gone) {
          const next = await iterator.next();
          // Shut down while waiting: the stream has had its last event.
          if (next.done || gone) break;
          if (!writeEvent(response, 'next', next.value, deliveredId)) await drained(response);
          deliveredId = undefined;
        }
      }
    } catch (error) {
      if (!gone) writeEvent(response, 'next', { errors: [mask(error)] }, undefined);
    } finally {
      clearInterval(keepAlive);
      response.off('close', onGone);
      streams.delete(response);
      if (!gone) {
        response.write('event: complete\ndata:\n\n');
        response.end();
      }
    }
  }

  return {
    handle(request: IncomingMessage, response: ServerResponse): void {
      handle(request, response).catch((error: unknown) => {
        logger.error(`herald: SSE request failed: ${String(error)}`);
        if (!response.headersSent) sendErrors(response, 500, [new GraphQLError(UNEXPECTED_ERROR_MESSAGE)]);
        else response.destroy();
      });
    },
    /**
     * Ends every open stream (server shutdown) with a `SERVICE_UNAVAILABLE` error and
     * `complete`, and resolves once each has been written out, or after `cutOffMs` (a
     * reader that does not read is cut off then).
     */
    async close(cutOffMs = 1000): Promise<void> {
      const ended = [...streams].map(([response, shutDown]) => {
        const finished = new Promise<void>((resolve) => {
          if (response.writableFinished || response.destroyed) return resolve();
          response.once('finish', resolve);
          response.once('close', resolve);
        });
        shutDown();
        return finished;
      });
      let cutOff: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(ended), new Promise((resolve) => (cutOff = setTimeout(resolve, cutOffMs)))]);
      clearTimeout(cutOff);
    },
  };
}

async function readOperation(request: IncomingMessage, maxBodyBytes: number): Promise<OperationRequest> {
  let params: Record<string, unknown>;
  if (request.method === 'GET') {
    const search = new URL(request.url ?? '/', 'http://herald').searchParams;
    params = {
      query: search.get('query') ?? undefined,
      variables: search.has('variables') ? JSON.parse(search.get('variables') ?? 'null') : undefined,
      operationName: search.get('operationName') ?? undefined,
    };
  } else if (request.method === 'POST') {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of request as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > maxBodyBytes) throw new Error(`request body is larger than ${maxBodyBytes} bytes (MAX_MESSAGE_BYTES)`);
      chunks.push(chunk);
    }
    const body: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    if (typeof body !== 'object' || body === null) throw new Error('the body must be a JSON object');
    params = body as Record<string, unknown>;
  } else {
    throw new Error(`${request.method ?? 'this method'} is not supported for an event stream: use GET or POST`);
  }
  const { query, variables, operationName } = params;
  if (typeof query !== 'string' || query === '') throw new Error('"query" must be a non-empty string');
  if (variables != null && (typeof variables !== 'object' || Array.isArray(variables))) throw new Error('"variables" must be an object');
  if (operationName != null && typeof operationName !== 'string') throw new Error('"operationName" must be a string');
  return {
    query,
    variables: (variables ?? undefined) as Record<string, unknown> | undefined,
    operationName: operationName ?? undefined,
  };
}

/** Writes one SSE event; false when the socket's buffer is full. */
function writeEvent(response: ServerResponse, event: string, result: ExecutionResult, id: string | undefined): boolean {
  const data = JSON.stringify({
    ...(result.errors ? { errors: result.errors.map((error) => error.toJSON()) } : {}),
    ...('data' in result ? { data: result.data } : {}),
  });
  return response.write(`${id ? `id: ${id}\n` : ''}event: ${event}\ndata: ${data}\n\n`);
}

function drained(response: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      response.off('drain', done);
      response.off('close', done);
      resolve();
    };
    response.on('drain', done);
    response.on('close', done);
  });
}

/** The last event of a stream when the server shuts down. */
function shuttingDown(): GraphQLError {
  return graphqlError(ErrorCode.ServiceUnavailable, 'the server is shutting down: reconnect, with Last-Event-ID to resume where this stream ended');
}

function sendErrors(response: ServerResponse, status: number, errors: readonly GraphQLError[]): void {
  response.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8' });
  response.end(JSON.stringify({ errors: errors.map((error) => error.toJSON()) }));
}
