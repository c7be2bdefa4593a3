/**
 * graphql-transport-ws, the server's side (graphql-ws' `PROTOCOL.md`), as Herald speaks
 * it: every message is parsed once (graphql-ws' public `parseMessage`), and answered
 * with graphql-ws' own close codes and reasons. `connection_init` authenticates the
 * connection (from its payload, or the upgrade's `Authorization` header) and arms the
 * {@link CloseCode.Forbidden} close at the token's expiry, which a `refreshToken`
 * mutation on the connection moves; a `subscribe` goes through the operation pipeline
 * (`graphql/operation.ts`): a subscription is opened on the core into a socket sink, a
 * query or mutation executed once. Shared by every connection of a transport: the
 * state is the connection's.
 */
import { execute, type ExecutionResult, type FormattedExecutionResult } from 'graphql';
import { MessageType, parseMessage, stringifyMessage, type Message, type SubscribePayload } from 'graphql-ws';
import { AuthenticationError, type Principal } from '../../auth/index.js';
import { graphqlError, type MaskError } from '../../common/errors.js';
import type { Subscriptions } from '../../core/subscriptions.js';
import { OperationRefusal, type OperationPipeline, type PreparedOperation } from '../../graphql/operation.js';
import { CloseCode } from './close-codes.js';
import type { Connection, Operation } from './connection.js';
import { SocketSink, type SocketSinkShared } from './socket-sink.js';

export interface ProtocolOptions {
  pipeline: OperationPipeline;
  /** Where each subscription is opened. */
  subscriptions: Subscriptions;
  /** Operations one connection may hold at once (`MAX_SUBSCRIPTIONS_PER_CONNECTION`). */
  maxOperations: number;
  /** What every socket sink shares. */
  sinks: SocketSinkShared;
  /** Called as each subscription opens (its sink's `onEnded` counts it out). */
  onOpened: () => void;
}

export interface Protocol {
  /** Handles one text message; never throws (a fault closes the connection with {@link CloseCode.InternalServerError}). */
  receive(connection: Connection, data: string): void;
  /** The socket closed: its timers are disarmed and its operations ended. */
  closed(connection: Connection): Promise<unknown>;
}

const ACK = stringifyMessage({ type: MessageType.ConnectionAck });
const PONG = stringifyMessage({ type: MessageType.Pong });

export function createProtocol(options: ProtocolOptions): Protocol {
  const { pipeline, subscriptions, sinks } = options;

  const receive = (connection: Connection, data: string): void => {
    let message: Message;
    try {
      message = parseMessage(data);
    } catch {
      return connection.close(CloseCode.BadRequest, 'Invalid message received');
    }
    switch (message.type) {
      case MessageType.ConnectionInit:
        if (connection.initReceived) return connection.close(CloseCode.TooManyInitialisationRequests, 'Too many initialisation requests');
        connection.initReceived = true;
        if (!authenticate(connection, message.payload, pipeline)) return;
        connection.acknowledged = true;
        return connection.send(ACK);
      case MessageType.Ping:
        return connection.send(message.payload ? stringifyMessage({ type: MessageType.Pong, payload: message.payload }) : PONG);
      case MessageType.Pong:
        return;
      case MessageType.Subscribe: {
        if (!connection.acknowledged) return connection.close(CloseCode.Unauthorized, 'Unauthorized');
        const { id, payload } = message;
        if (connection.has(id)) return connection.close(CloseCode.SubscriberAlreadyExists, `Subscriber for ${id} already exists`);
        // Reserved before anything is awaited: a `complete` meanwhile cancels it.
        const placeholder: Operation = {};
        connection.reserve(id, placeholder);
        run(connection, id, payload, placeholder).catch((error: unknown) => {
          connection.release(id, placeholder);
          connection.fail(error);
        });
        return;
      }
      case MessageType.Complete:
        return connection.complete(message.id);
      default:
        // A server's message (`connection_ack`, `next`, …) sent to the server.
        return connection.fail(new Error(`Unexpected message of type ${message.type} received`));
    }
  };

  /** Runs one `subscribe`: refused with an `error`, opened on the core, or executed and answered with `next` and `complete`. */
  const run = async (connection: Connection, id: string, payload: SubscribePayload, placeholder: Operation): Promise<void> => {
    // The count includes this operation. One over the limit is prepared, to be told
    // apart: a connection holding its full allowance of subscriptions must still run a
    // query or a mutation — `refreshToken` above all, or it would close at expiry.
    if (connection.operationCount > options.maxOperations + 1) return overLimit(connection, id, placeholder);
    // The connection rides in the context for `refreshToken`, the one field that needs it.
    const operation = pipeline.prepare(payload, connection.principal, { tokenHolder: connection });
    if (operation instanceof OperationRefusal) {
      connection.release(id, placeholder);
      return connection.sendErrors(id, operation.errors);
    }
    if (operation.kind === 'subscription' && connection.operationCount > options.maxOperations) return overLimit(connection, id, placeholder);
    if (operation.kind === 'subscription') return subscribe(connection, id, operation, placeholder);
    const result = await execute(operation.args);
    if (!connection.release(id, placeholder)) return; // completed by the client meanwhile
    connection.send(stringifyMessage({ id, type: MessageType.Next, payload: nextPayload(result, pipeline.maskError) }));
    connection.sendComplete(id);
  };

  const overLimit = (connection: Connection, id: string, placeholder: Operation): void => {
    connection.release(id, placeholder);
    connection.sendErrors(id, [
      graphqlError('LIMIT_EXCEEDED', `this connection already holds ${options.maxOperations} subscriptions (MAX_SUBSCRIPTIONS_PER_CONNECTION)`),
    ]);
  };

  const subscribe = async (connection: Connection, id: string, operation: PreparedOperation, placeholder: Operation): Promise<void> => {
    const opened = await pipeline.subscribe(operation, async (request, plan) => {
      const sink = await subscriptions.openInto({ ...request, transport: 'websocket' }, (hooks) => new SocketSink(connection, id, plan, sinks, hooks), { endsAtExpiry: false });
      options.onOpened();
      // Counted out once it ends; one that ended before it was counted in is counted out now.
      sink.counted();
      return sink;
    });
    if (opened instanceof SocketSink) {
      // The client completed it, or left, while it was opening.
      if (!connection.replace(id, placeholder, opened)) return void (await opened.return());
      opened.registered();
      return;
    }
    // Refused (a wrong user, a bad cursor, Redis unavailable): as graphql-ws answers a
    // source stream that is an error, a `next` with the errors, then `complete`.
    if (!connection.release(id, placeholder)) return;
    const mask = pipeline.maskError;
    connection.send(stringifyMessage({ id, type: MessageType.Next, payload: { errors: opened.errors.map((error) => mask(error).toJSON()) } }));
    connection.sendComplete(id);
  };

  return {
    receive(connection, data) {
      try {
        receive(connection, data);
      } catch (error) {
        connection.fail(error);
      }
    },
    closed(connection) {
      connection.cancelInit?.();
      connection.cancelExpiry?.();
      return connection.endAll();
    },
  };
}

/** A result as graphql-ws sends it in a `next`: `data`, `errors` (each through the mask), `extensions`, those present only. */
function nextPayload({ data, errors, extensions }: ExecutionResult, mask: MaskError): FormattedExecutionResult {
  return {
    ...(data === undefined ? {} : { data }),
    ...(errors === undefined ? {} : { errors: errors.map((error) => mask(error).toJSON()) }),
    ...(extensions === undefined ? {} : { extensions }),
  };
}

/** `connection_init`: verifies the token, remembers the principal, arms the expiry close. False when refused (the socket is closed). */
function authenticate(connection: Connection, payload: unknown, pipeline: OperationPipeline): boolean {
  // graphql-ws' rule: the deadline is met by receiving `connection_init`, accepted or not.
  connection.cancelInit?.();
  connection.cancelInit = undefined;
  const params = typeof payload === 'object' && payload !== null ? (payload as Record<string, unknown>) : {};
  const header = params['authorization'] ?? params['Authorization'] ?? connection.upgradeAuthorization;
  // Not needed again once the principal is known.
  connection.upgradeAuthorization = undefined;
  let principal: Principal | AuthenticationError;
  try {
    principal = pipeline.authenticate(header, { required: true });
  } catch {
    principal = new AuthenticationError('token rejected'); // whatever went wrong, this token opens nothing
  }
  if (principal instanceof AuthenticationError) {
    connection.close(CloseCode.Forbidden, `Forbidden: ${principal.message}`);
    return false;
  }
  connection.hold(principal);
  connection.bound.initialised();
  return true;
}
