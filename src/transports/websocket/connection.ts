/**
 * One WebSocket connection's state, for hours: its sockets, its outbox and send bound,
 * where it is in graphql-transport-ws (init received, acknowledged, its principal) and
 * its operations by id. One object per connection with its methods on the prototype:
 * closures per connection cost a function each and kept their scope alive.
 */
import type { Duplex } from 'node:stream';
import { MessageType, stringifyMessage } from 'graphql-ws';
import type { GraphQLError } from 'graphql';
import type { WebSocket } from 'ws';
import type { Principal } from '../../auth/index.js';
import type { MaskError } from '../../common/errors.js';
import type { Failure } from '../../common/failures.js';
import { runAt, type Cancel } from '../../common/timers.js';
import type { TokenHolder } from '../../graphql/schema.js';
import { CloseCode, closeReason } from './close-codes.js';
import type { FrameWriter, Outbox, OutboxOwner } from './frames.js';
import { SendBound, type SendBoundLimits } from './send-bound.js';

/** What a client can do wrong on its own connection; each is logged once per connection. */
export type Misbehaviour = 'protocol-error' | 'binary-frame' | 'peer-reset' | 'write-after-close' | 'socket-error';

/**
 * An operation of a connection under its id: a subscription's sink once it is open, a
 * placeholder of its own while it opens or while a query runs (so a `complete`, or the
 * same id reused, is told from it after each `await`).
 */
export interface Operation {
  /** Ends it: a `complete` from the client, or the socket closed. Absent on a placeholder. */
  return?(): Promise<unknown>;
}

/** What every connection of one transport shares. */
export interface ConnectionShared {
  /** Closes `socket` with {@link CloseCode.SlowConsumer}, counted. */
  readonly slowConsumer: (socket: WebSocket, bound: SendBound) => void;
  /** The one error mask. */
  readonly maskError: MaskError;
  /** A connection took a fresh token in-band: logged and counted. */
  readonly onTokenRefreshed: (connection: Connection) => void;
  /** A connection's in-band refresh was refused: logged and counted. */
  readonly onTokenRefreshRefused: (connection: Connection, failure: Failure) => void;
}

/** What a socket sink asks of its connection. */
export interface SinkConnection {
  readonly socket: WebSocket;
  /** The TCP socket under `ws`. */
  readonly raw: Duplex;
  readonly outbox: Outbox;
  /** Removes `operation` from under `id`; false if it was not there (completed by the client, or the socket closed). */
  release(id: string, operation: Operation): boolean;
  sendErrors(id: string, errors: readonly GraphQLError[]): void;
  sendComplete(id: string): void;
}

export class Connection implements OutboxOwner, SinkConnection, TokenHolder {
  /** This process's number for the connection: `connection: "ws-<n>"` on its log lines. */
  readonly number: number;
  readonly socket: WebSocket;
  readonly raw: Duplex;
  /** The fan-out frames of the current turn, written together when it ends. */
  readonly outbox: Outbox;
  /** The bound on every byte waiting to be sent on the socket. */
  readonly bound: SendBound;
  readonly #shared: ConnectionShared;
  /** Its operations by id; made with the first. */
  #operations: Map<string, Operation> | undefined;
  /** The kinds of client misbehaviour already logged for this connection. */
  logged: Set<Misbehaviour> | undefined;
  /** Set once an internal error has been logged and the socket closed for it. */
  failed = false;
  /** Whether `connection_init` has arrived (accepted or not): a second closes with {@link CloseCode.TooManyInitialisationRequests}. */
  initReceived = false;
  /** Whether `connection_ack` was sent: operations are accepted from then on. */
  acknowledged = false;
  /**
   * The upgrade request's `Authorization` header, until `connection_init`. Only the
   * header is kept, not the request: a connection lives for hours, a request object is
   * kilobytes.
   */
  upgradeAuthorization: string | undefined;
  /** The principal of the token it holds, from `connection_init` on; set by {@link hold}. */
  principal: Principal | undefined;
  /** Disarms the token-expiry close; replaced when a refresh moves it, called when the socket closes. */
  cancelExpiry: Cancel | undefined;
  /** Disarms the {@link CloseCode.ConnectionInitialisationTimeout} close of a socket without `connection_init`; called when it arrives, or the socket closes. */
  cancelInit: Cancel | undefined;

  constructor(number: number, socket: WebSocket, raw: Duplex, frames: FrameWriter, shared: ConnectionShared, upgradeAuthorization: string | undefined, limits: SendBoundLimits) {
    this.number = number;
    this.socket = socket;
    this.raw = raw;
    this.#shared = shared;
    this.upgradeAuthorization = upgradeAuthorization;
    this.bound = new SendBound(socket, raw, limits);
    this.outbox = frames.outbox(raw, this);
  }

  isOpen(): boolean {
    return this.socket.readyState === this.socket.OPEN;
  }

  wrote(): void {
    this.bound.wrote();
  }

  /**
   * Sends one protocol message, not waiting for the write: a client that does not read
   * would hold a promise per answer. The bound limits what waits instead.
   */
  send(data: string): void {
    const { socket, bound } = this;
    if (socket.readyState !== socket.OPEN) return;
    // A `complete` or `error` must not overtake the `next` frames held this turn.
    this.outbox.flush();
    if (bound.over) return this.#shared.slowConsumer(socket, bound);
    socket.send(data);
    bound.wrote();
  }

  close(code: CloseCode, reason: string): void {
    this.socket.close(code, closeReason(reason));
  }

  /**
   * Holds `principal` (verified) as the connection's, and arms the {@link CloseCode.Forbidden}
   * close at its expiry in place of the deadline armed before, if any. A socket already
   * closing arms nothing: its clean-up has disarmed the old deadline, and a new one would
   * keep the connection until it fired.
   */
  hold(principal: Principal): void {
    if (!this.isOpen()) return;
    this.principal = principal;
    this.cancelExpiry?.();
    const { socket } = this;
    this.cancelExpiry = runAt(principal.expiresAt, () => socket.close(CloseCode.Forbidden, 'Forbidden: token expired'));
  }

  tokenRefreshed(principal: Principal): void {
    this.hold(principal);
    this.#shared.onTokenRefreshed(this);
  }

  tokenRefreshRefused(failure: Failure): void {
    this.#shared.onTokenRefreshRefused(this, failure);
  }

  /** Closes the socket for a fault of Herald's (logged by the mask), once: what follows on the connection is its echo. */
  fail(error: unknown): void {
    if (this.failed) return;
    this.failed = true;
    this.close(CloseCode.InternalServerError, this.#shared.maskError(error).message);
  }

  /** How many operations are open (or opening). */
  get operationCount(): number {
    return this.#operations?.size ?? 0;
  }

  has(id: string): boolean {
    return this.#operations?.has(id) ?? false;
  }

  /** Whether `operation` is still the one under `id`. */
  holds(id: string, operation: Operation): boolean {
    return this.#operations?.get(id) === operation;
  }

  reserve(id: string, operation: Operation): void {
    (this.#operations ??= new Map()).set(id, operation);
  }

  /** Puts `operation` under `id` in place of `placeholder`; false if that is gone (completed, or the socket closed). */
  replace(id: string, placeholder: Operation, operation: Operation): boolean {
    if (!this.holds(id, placeholder)) return false;
    this.#operations?.set(id, operation);
    return true;
  }

  release(id: string, operation: Operation): boolean {
    if (!this.holds(id, operation)) return false;
    this.#operations?.delete(id);
    return true;
  }

  /** The client's `complete`: the operation under `id` is forgotten and ended, without a word back. */
  complete(id: string): void {
    const operation = this.#operations?.get(id);
    if (operation === undefined) return;
    this.#operations?.delete(id);
    void operation.return?.();
  }

  /** The socket closed: every operation ends, and none says so. */
  endAll(): Promise<unknown> {
    const operations = this.#operations;
    if (operations === undefined) return Promise.resolve();
    this.#operations = undefined;
    return Promise.all([...operations.values()].map((operation) => operation.return?.()));
  }

  /** graphql-transport-ws' `error` for `id`, every error through the mask. */
  sendErrors(id: string, errors: readonly GraphQLError[]): void {
    const mask = this.#shared.maskError;
    this.send(stringifyMessage({ id, type: MessageType.Error, payload: errors.map((error) => mask(error).toJSON()) }));
  }

  sendComplete(id: string): void {
    this.send(stringifyMessage({ id, type: MessageType.Complete }));
  }
}
