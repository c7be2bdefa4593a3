/**
 * The sink of one WebSocket subscription, on the fan-out path: each item is rendered by
 * the operation's plan (shared by every observer with the same operation) and written
 * with this subscription's id spliced in, into the connection's outbox. No queue, no
 * promise and no object but the frame per delivery.
 *
 * It is also the subscription's entry in its connection's operations: when it ends on
 * its own (the token expired, the client was too slow, the core failed) the client is
 * told, with an `error` or a `complete`, unless the client completed it first. One object
 * per subscription: a sink made of closures costs a dozen functions and their contexts,
 * for hours.
 */
import { GraphQLError } from 'graphql';
import type { Duplex } from 'node:stream';
import type { HotCounts } from '../../common/metrics.js';
import type { SubscriptionItem } from '../../common/notification.js';
import type { Sink } from '../../core/sink.js';
import type { SinkHooks } from '../../core/subscriptions.js';
import type { OperationPlan } from '../../graphql/render.js';
import { CloseCode } from './close-codes.js';
import type { SinkConnection } from './connection.js';
import { textFrame } from './frames.js';

/** What every socket sink of one transport shares. */
export interface SocketSinkShared {
  readonly maxBufferedBytes: number;
  readonly counts: Pick<HotCounts, 'slowConsumerCloses'>;
  /** Called once when a counted sink ends. */
  readonly onEnded: () => void;
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({ value: undefined, done: true });

export class SocketSink implements Sink, AsyncIterable<never>, AsyncIterator<never> {
  readonly #connection: SinkConnection;
  readonly #id: string;
  /** `{"id":<id>,"type":"next","payload":`: the frame up to the rendered payload. */
  readonly #head: Buffer;
  readonly #plan: OperationPlan;
  readonly #shared: SocketSinkShared;
  readonly #hooks: SinkHooks;
  #ended = false;
  #counted = false;
  #registered = false;
  #error: Error | undefined;

  constructor(connection: SinkConnection, id: string, plan: OperationPlan, shared: SocketSinkShared, hooks: SinkHooks) {
    this.#connection = connection;
    this.#id = id;
    this.#head = Buffer.from(`{"id":${JSON.stringify(id)},"type":"next","payload":`);
    this.#plan = plan;
    this.#shared = shared;
    this.#hooks = hooks;
  }

  /** The subscription is counted as open: {@link SocketSinkShared.onEnded} is due when it ends. */
  counted(): void {
    this.#counted = true;
    if (this.#ended) this.#shared.onEnded();
  }

  /** It is its connection's operation of its id: when it ends on its own, the client is told, and it leaves. */
  registered(): void {
    this.#registered = true;
    if (this.#ended) this.#leave();
  }

  deliver(item: SubscriptionItem): boolean {
    const { socket, outbox } = this.#connection;
    if (this.#ended || socket.readyState !== socket.OPEN) return false;
    // Judged on the turn's first frame: what waits then is what the client has not
    // read from earlier turns.
    const { maxBufferedBytes } = this.#shared;
    if (!outbox.holding && socket.bufferedAmount > maxBufferedBytes) {
      this.#shared.counts.slowConsumerCloses += 1;
      socket.close(CloseCode.SlowConsumer, `slow consumer: more than ${maxBufferedBytes} bytes waiting (MAX_BUFFERED_BYTES)`);
      void this.#end();
      return false;
    }
    outbox.add(textFrame(this.#head, this.#plan.render(item)));
    return true;
  }

  preload(items: readonly SubscriptionItem[]): void {
    if (this.#ended) return;
    for (const item of items) this.#connection.outbox.add(textFrame(this.#head, this.#plan.render(item)));
  }

  async room(): Promise<void> {
    // What was added this turn leaves when the turn ends; then the client must read it.
    await new Promise((resolve) => setImmediate(resolve));
    const { socket, raw } = this.#connection;
    while (!this.#ended && socket.readyState === socket.OPEN && socket.bufferedAmount > this.#shared.maxBufferedBytes / 2) {
      await drainedOrClosed(raw);
    }
  }

  fail(error: Error): void {
    void this.#end(error);
  }

  async return(): Promise<IteratorReturnResult<undefined>> {
    await this.#end();
    return DONE;
  }

  /**
   * graphql-js asks a subscription field for an async iterable (`createSourceEventStream`
   * checks it); nothing reads this one, since its events go to the socket.
   */
  next(): Promise<IteratorResult<never>> {
    return Promise.resolve(DONE);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async #end(error?: Error): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = error;
    if (this.#counted) this.#shared.onEnded();
    if (this.#registered) this.#leave();
    await this.#hooks.onEnd();
  }

  /** As graphql-ws ends a subscription whose stream ended: unless the client completed it (or left), an `error` or a `complete`. */
  #leave(): void {
    const error = this.#error;
    if (!this.#connection.release(this.#id, this)) return;
    if (error) this.#connection.sendErrors(this.#id, [new GraphQLError(error.message, { originalError: error })]);
    else this.#connection.sendComplete(this.#id);
  }
}

/** Resolves when `raw` has written everything it buffered, or closed. */
function drainedOrClosed(raw: Duplex): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      raw.off('drain', done);
      raw.off('close', done);
      resolve();
    };
    raw.on('drain', done);
    raw.on('close', done);
  });
}
