/**
 * The broker carries encoded notifications between publish and subscribe servers. It
 * knows channels and strings only: no GraphQL, no transport, no observers.
 */

/**
 * Receives every message of every subscribed channel and returns how many live
 * subscriptions it reached in this process (the subscribe server's observer map).
 */
export type MessageSink = (channel: string, payload: string) => number;

export interface Broker {
  /** Which implementation this is, for logs and `/readyz`. */
  readonly kind: 'redis' | 'in-process';
  /** Sets the one sink of this broker; a second call throws. */
  listen(sink: MessageSink): void;
  /**
   * Starts delivering `channel` to the sink. Resolves only once the broker has
   * confirmed the subscription; rejects with {@link BrokerUnavailableError}.
   */
  subscribe(channel: string): Promise<void>;
  /** Stops delivering `channel`. Never rejects: a failure is logged. */
  unsubscribe(channel: string): Promise<void>;
  /**
   * Publishes `payload` on `channel` and resolves with the number of live
   * subscriptions it reached across every subscribe server; rejects with
   * {@link BrokerUnavailableError} without waiting when the broker is down.
   */
  publish(channel: string, payload: string): Promise<number>;
  /** Whether the broker can subscribe and publish right now (`/readyz`). */
  isReady(): boolean;
  /** Releases everything the broker holds. The clients given to it are not closed. */
  close(): Promise<void>;
}

/** The broker cannot reach its backend; the message says what failed. */
export class BrokerUnavailableError extends Error {
  override readonly name = 'BrokerUnavailableError';
}
