/**
 * Where one subscription's items go, whichever transport serves it: a queue its
 * transport reads (`pull-queue.ts`: SSE, gRPC) or the WebSocket's socket sink, which writes
 * straight to its socket. The observer map `notify()`s an `Observer` (the resuming
 * observer) of each notification; a subscription `deliver()`s to its `Sink`.
 */
import type { SubscriptionItem } from '../common/notification.js';

export interface Sink {
  /** Takes one live item; false if the sink could not (ended, or too far behind). */
  deliver(item: SubscriptionItem): boolean;
  /** Takes a page of history, in order, ahead of anything live. */
  preload(items: readonly SubscriptionItem[]): void;
  /**
   * Resolves once the client has taken most of what it was given (its buffer is under
   * half its bound), or the sink has ended: history is read a page at a time, never
   * faster than the client reads it.
   */
  room(): Promise<void>;
  /** Ends the subscription with `error` (token expired, too slow). */
  fail(error: Error): void;
  /** Ends the subscription now. */
  return(): Promise<unknown>;
}
