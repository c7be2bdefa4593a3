/**
 * WebSocket frames of the fan-out path, written straight to the TCP socket under `ws`,
 * and held together per turn of the event loop: the observer map delivers every
 * message that arrived from Redis synchronously, so the frames one socket gets in a
 * turn leave in one write once the turn's I/O is done. The system call, not the
 * JavaScript, is most of a delivery's cost.
 *
 * Held in a slot of the connection's own rather than by corking the socket. Corking made
 * the stream queue an object per frame, and the set of corked sockets grew afresh each
 * turn; under a steady fan-out stream (`npm run bench`) that garbage reached the old
 * generation, about 1 MB per young-generation collection, and brought a mark-compact
 * (a pause of every delivery) every few seconds. Without it the old generation stays
 * flat.
 */
import type { Duplex } from 'node:stream';
import type { AfterThisTurn } from '../../common/timers.js';

const CLOSING_BRACE = 0x7d; // '}'

/**
 * `head + payload + '}'` as one unmasked, unfragmented text frame (RFC 6455 §5.2): one
 * allocation and one copy per delivery, where `ws.send` would build and frame the
 * message through its sender queue.
 */
export function textFrame(head: Buffer, payload: Buffer): Buffer {
  const length = head.length + payload.length + 1;
  const headerSize = length < 126 ? 2 : length < 65_536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(headerSize + length);
  frame[0] = 0x81; // FIN, text
  if (length < 126) {
    frame[1] = length;
  } else if (length < 65_536) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeBigUInt64BE(BigInt(length), 2);
  }
  head.copy(frame, headerSize);
  payload.copy(frame, headerSize + head.length);
  frame[headerSize + length - 1] = CLOSING_BRACE;
  return frame;
}

/** One connection's frames of the current turn. */
export interface Outbox {
  /**
   * Whether frames of this turn are held. While none are, what the socket has buffered
   * is what the client has not read from earlier turns.
   */
  readonly holding: boolean;
  /** Holds `frame` until the end of the turn. */
  add(frame: Buffer): void;
  /**
   * Writes what is held now. Called before `ws` writes a message of its own to the
   * socket (a `complete`, an `error`), so the frames before it arrive before it.
   */
  flush(): void;
}

/** What an outbox asks of its connection; called as methods (the connection is one object). */
export interface OutboxOwner {
  /** Whether the WebSocket is still open: frames held when it started closing are dropped (nothing may follow a close frame). */
  isOpen(): boolean;
  /** Called after each write (the socket's send bound checks what now waits). */
  wrote?(): void;
}

export interface FrameWriter {
  /**
   * The outbox of one connection: `socket` is the TCP socket under `ws`. Safe because
   * permessage-deflate is off (so `ws` never holds frames back) and every frame is
   * written whole; `ws`' `bufferedAmount` counts these bytes once written.
   */
  outbox(socket: Duplex, owner: OutboxOwner): Outbox;
}

export function createFrameWriter(afterThisTurn: AfterThisTurn): FrameWriter {
  /** Outboxes holding frames this turn; reused from turn to turn, never shrunk. */
  const waiting: Array<SocketOutbox | undefined> = [];
  let count = 0;
  const flushAll = (): void => {
    for (let n = 0; n < count; n++) {
      waiting[n]!.flush();
      waiting[n] = undefined;
    }
    count = 0;
  };
  const enqueue = (outbox: SocketOutbox): void => {
    if (count === 0) afterThisTurn(flushAll);
    waiting[count++] = outbox;
  };
  return { outbox: (socket, owner) => new SocketOutbox(socket, owner, enqueue) };
}

class SocketOutbox implements Outbox {
  readonly #socket: Duplex;
  readonly #owner: OutboxOwner;
  readonly #enqueue: (outbox: SocketOutbox) => void;
  /** The turn's first frame: most turns give a socket only one. */
  #first: Buffer | undefined;
  #more: Buffer[] | undefined;

  constructor(socket: Duplex, owner: OutboxOwner, enqueue: (outbox: SocketOutbox) => void) {
    this.#socket = socket;
    this.#owner = owner;
    this.#enqueue = enqueue;
  }

  get holding(): boolean {
    return this.#first !== undefined;
  }

  add(frame: Buffer): void {
    if (this.#first === undefined) {
      this.#first = frame;
      this.#enqueue(this);
    } else {
      (this.#more ??= []).push(frame);
    }
  }

  flush(): void {
    const first = this.#first;
    if (first === undefined) return;
    const more = this.#more;
    this.#first = undefined;
    this.#more = undefined;
    if (this.#socket.destroyed || !this.#owner.isOpen()) return;
    this.#socket.write(more === undefined ? first : Buffer.concat([first, ...more]));
    this.#owner.wrote?.();
  }
}
