/**
 * One bound on every byte waiting to be sent on one WebSocket — graphql-ws' own messages
 * (`pong`, `connection_ack`, `error`, `complete`), `ws`' control frames and the fan-out
 * frames alike — and back-pressure on what the client sends.
 *
 * graphql-ws answers every `ping` message, before `connection_init` too. A client that
 * sends pings and never reads made each answer wait in Herald's heap: one such client
 * exhausted a 2 GB heap in seconds, anonymously. Now, once more than the bound waits, the
 * socket's reads are paused until it has drained: the client is throttled by TCP itself
 * (its pings wait in the kernel and in its own process), and a socket that is still over
 * the bound when something more must be sent to it is closed as a slow consumer.
 *
 * The bytes are counted where they wait: `ws`' `bufferedAmount`, which is its sender's
 * queue (empty here: permessage-deflate is off and nothing is sent as a Blob) plus the
 * TCP socket's `writableLength`, where every write lands, the fan-out path's included.
 */
import type { Duplex } from 'node:stream';

/**
 * Bytes that may wait on a socket that has not completed `connection_init`. Nothing an
 * honest client does before then needs more than the kernel's socket buffers already
 * hold (a `connection_ack`, the odd `pong`), so it is a constant, not a setting. It is
 * the TCP socket's own high-water mark on Node 20; where that is larger (64 KiB from
 * Node 22 on) the bound is that, so any socket over it is one whose `drain` will come,
 * and paused reads are always resumed.
 */
export const UNINITIALISED_BUFFERED_BYTES = 16 * 1024;


/** The members of a `ws` WebSocket the bound uses. */
export interface PausableSocket {
  /** Bytes written to the socket and not yet handed to the kernel. */
  readonly bufferedAmount: number;
  /** Stops reading from the TCP socket. */
  pause(): void;
  /** Reads again. */
  resume(): void;
}

export interface SendBoundLimits {
  /** Bytes that may wait before `connection_init` is accepted. */
  beforeInit: number;
  /** Bytes that may wait afterwards (`MAX_BUFFERED_BYTES`). */
  afterInit: number;
}

/** The send bound of one WebSocket. */
export class SendBound {
  readonly #socket: PausableSocket;
  readonly #raw: Duplex;
  #limit: number;
  readonly #afterInit: number;
  #paused = false;

  /**
   * @param socket the WebSocket, paused and resumed by the bound
   * @param raw the TCP socket under it, whose `drain` resumes reading
   */
  constructor(socket: PausableSocket, raw: Duplex, limits: SendBoundLimits) {
    this.#socket = socket;
    this.#raw = raw;
    // Never below the TCP socket's own high-water mark (16 KiB on Node 20, 64 KiB from
    // Node 22 on): reads are paused only once the socket has asked for a `drain`, so a
    // smaller bound could be passed without ever pausing.
    this.#limit = Math.max(Math.min(limits.beforeInit, limits.afterInit), raw.writableHighWaterMark);
    this.#afterInit = limits.afterInit;
    // One listener for the connection's life rather than one per pause.
    raw.on('drain', this.#onDrain);
  }

  /** The bytes that may wait now. */
  get limit(): number {
    return this.#limit;
  }

  /** Whether more than {@link limit} bytes wait to be sent. */
  get over(): boolean {
    return this.#socket.bufferedAmount > this.#limit;
  }

  /** Whether reads are paused until the socket drains. */
  get paused(): boolean {
    return this.#paused;
  }

  /** `connection_init` was accepted: the larger bound applies from now on. */
  initialised(): void {
    this.#limit = this.#afterInit;
  }

  /**
   * Called after each write: pauses reading while more than the bound waits. Only when
   * the TCP socket has asked for a `drain` (more than its high-water mark waits), so the
   * `drain` that resumes reading is sure to come.
   */
  wrote(): void {
    if (this.#paused || !this.#raw.writableNeedDrain || !this.over) return;
    this.#paused = true;
    this.#socket.pause();
  }

  readonly #onDrain = (): void => {
    if (!this.#paused) return;
    this.#paused = false;
    this.#socket.resume();
  };
}
