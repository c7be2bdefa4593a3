/**
 * GraphQL over Server-Sent Events for the subscribe server, in the "distinct
 * connections" form that graphql-sse's client and GraphiQL speak: one request per
 * operation (GET with `query`/`variables` parameters, or POST with a JSON body),
 * answered with `event: next` per result and a final `event: complete`.
 *
 * Herald serves it itself, not through Yoga, so that each event carries the
 * notification's id as the SSE `id:` field and a reconnecting `EventSource` resumes
 * from its `Last-Event-ID` header. The operation pipeline (`graphql/operation.ts`)
 * authenticates, prepares and opens; this module opens each subscription as a queue on
 * the core and reads it, each event rendered by the fan-out plan, once per distinct
 * operation. A query is executed once. A request that goes away (aborted, socket died)
 * ends the subscription, releasing its channels.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { execute, type ExecutionResult, type GraphQLError } from 'graphql';
import { AuthenticationError } from '../auth/index.js';
import { graphqlError } from '../common/errors.js';
import { FAILURES } from '../common/failures.js';
import { bound, type Logger } from '../common/logger.js';
import type { SubscriptionItem } from '../common/notification.js';
import { BadRequestError, paramsFromJson, paramsFromSearch, readBody, type OperationParams } from '../graphql/params.js';
import { OperationRefusal, type OperationPipeline } from '../graphql/operation.js';
import type { OperationPlan } from '../graphql/render.js';
import type { PullQueue } from '../core/pull-queue.js';
import type { Subscriptions } from '../core/subscriptions.js';

export interface SseTransportOptions {
  /** Prepares every operation and opens every subscription (`graphql/operation.ts`). */
  pipeline: OperationPipeline;
  /** Where each subscription is opened. */
  subscriptions: Subscriptions;
  /** Largest POST body read, in bytes (the HTTP edge has checked Content-Length). */
  maxBodyBytes: number;
  /** Interval of `:` comment lines that keep proxies and dead-peer detection going, in ms. */
  keepAliveMs: number;
  logger: Logger;
}

export function createSseTransport(options: SseTransportOptions) {
  const { pipeline, subscriptions } = options;
  /** Each open stream's shutdown: its final events, then its end. */
  const streams = new Map<ServerResponse, () => void>();
  /** Streams whose subscription is open (a query's stream holds none). */
  let openSubscriptions = 0;
  /** Streams opened so far: `connection: "sse-<n>"` on a stream's log lines. */
  let opened = 0;
  const mask = pipeline.maskError;

  async function handle(request: IncomingMessage, response: ServerResponse, alreadyRead: OperationParams | undefined): Promise<void> {
    const principal = pipeline.authenticate(request.headers.authorization);
    if (principal instanceof AuthenticationError) return sendErrors(response, FAILURES.UNAUTHENTICATED.http, [mask(principal)]);
    let params: OperationParams;
    try {
      params = alreadyRead ?? (await readOperation(request, options.maxBodyBytes));
    } catch (error) {
      if (!(error instanceof BadRequestError)) throw error;
      return sendErrors(response, FAILURES.BAD_REQUEST.http, [mask(error)]);
    }
    const operation = pipeline.prepare(params, principal);
    // Whatever the failure kind of a refused document, the request is a bad one.
    if (operation instanceof OperationRefusal) return sendErrors(response, FAILURES.BAD_REQUEST.http, operation.errors.map(mask));

    const header = request.headers['last-event-id'];
    const lastEventId = typeof header === 'string' && header !== '' ? header : undefined;
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
    /** The subscription's queue, once it is open, and what renders its events. */
    let queue: PullQueue<SubscriptionItem> | undefined;
    let rendered: OperationPlan | undefined;
    const onGone = (): void => {
      if (gone) return;
      gone = true;
      void queue?.return();
    };
    response.once('close', onGone);
    const log = bound(options.logger, { connection: `sse-${++opened}` });
    log.debug?.('herald: event stream opened');
    streams.set(response, () => {
      if (gone) return;
      clearInterval(keepAlive);
      // The client reconnects and resumes where it was: the last `id:` it got is its cursor.
      writeEvent(response, 'next', { errors: [shuttingDown()] }, undefined);
      response.end('event: complete\ndata:\n\n');
      onGone();
    });
    try {
      if (operation.kind !== 'subscription') {
        const result = await execute(operation.args);
        if (!gone) writeEvent(response, 'next', pipeline.masked(result), undefined);
        return;
      }
      const stream = await pipeline.subscribe(
        operation,
        async (openRequest, plan) => {
          queue = await subscriptions.open({ ...openRequest, transport: 'sse' });
          rendered = plan;
          openSubscriptions += 1;
          return queue;
        },
        lastEventId,
      );
      if (stream instanceof OperationRefusal) {
        if (!gone) writeEvent(response, 'next', pipeline.masked({ errors: stream.errors }), undefined);
        return;
      }
      const plan = rendered as OperationPlan;
      queue = stream;
      if (gone) await queue.return();
      while (!gone) {
        const next = await queue.next();
        // Shut down while waiting: the stream has had its last event.
        if (next.done || gone) break;
        const item = next.value;
        // The notification's id is the event's `id:`, the cursor a reconnect resumes from.
        const event = `${'id' in item ? `id: ${item.id}\n` : ''}event: next\ndata: ${plan.render(item).toString()}\n\n`;
        if (!response.write(event)) await drained(response);
      }
    } catch (error) {
      if (!gone) writeEvent(response, 'next', { errors: [mask(error)] }, undefined);
    } finally {
      clearInterval(keepAlive);
      response.off('close', onGone);
      streams.delete(response);
      if (queue) openSubscriptions -= 1;
      log.debug?.(gone ? 'herald: event stream closed' : 'herald: event stream completed');
      if (!gone) {
        response.write('event: complete\ndata:\n\n');
        response.end();
      }
    }
  }

  return {
    /** Open event streams. */
    connections: (): number => streams.size,
    /** Open subscriptions, one at most per stream. */
    subscriptions: (): number => openSubscriptions,
    /** Serves one request; `operation` when its parameters have been read already (its body is gone). */
    handle(request: IncomingMessage, response: ServerResponse, operation?: OperationParams): void {
      handle(request, response, operation).catch((error: unknown) => {
        const unexpected = mask(error);
        if (!response.headersSent) sendErrors(response, 500, [unexpected]);
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

/** The operation a request asks for; a malformed one throws {@link BadRequestError}. */
async function readOperation(request: IncomingMessage, maxBodyBytes: number): Promise<OperationParams> {
  if (request.method === 'GET') return paramsFromSearch(new URL(request.url ?? '/', 'http://herald').searchParams);
  if (request.method !== 'POST') {
    throw new BadRequestError(`${request.method ?? 'this method'} is not supported for an event stream: use GET or POST`);
  }
  return paramsFromJson((await readBody(request as AsyncIterable<Buffer>, maxBodyBytes)).toString('utf8'));
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
  return graphqlError('SERVICE_UNAVAILABLE', 'the server is shutting down: reconnect, with Last-Event-ID to resume where this stream ended');
}

function sendErrors(response: ServerResponse, status: number, errors: readonly GraphQLError[]): void {
  response.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8' });
  response.end(JSON.stringify({ errors: errors.map((error) => error.toJSON()) }));
}
