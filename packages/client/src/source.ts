/**
 * The seam between the client's core (position, dedupe, inbox, listeners) and where
 * notifications come from: the direct WebSocket source (`connection.ts`) or, in a tab
 * that is not the leader, the shared-tab follower source (`shared.ts`). Sources may hand
 * over a notification twice (a resume overlaps, a leader changes); the core drops repeats.
 */
import type { HeraldGap, HeraldNotification, HeraldSessionError, HeraldStatus } from './types.js';

export interface SourceHandlers {
  /** The id to resume after (`since`), read at every (re)subscribe: the core's position. */
  since(): string | undefined;
  /** A notification, in the server's order. */
  notification(notification: HeraldNotification): void;
  /** The user's read position moved (this device or another). */
  readState(readUpTo: string): void;
  /** The server said `HISTORY_GAP`. */
  gap(gap: HeraldGap): void;
  status(status: HeraldStatus): void;
  /** The session ended for good; the source has stopped. */
  fatal(error: HeraldSessionError): void;
}

/** A GraphQL operation sent over the source's connection (e.g. `markNotificationsRead`). */
export interface SourceOperation {
  readonly query: string;
  readonly variables?: Record<string, unknown>;
}

export interface NotificationSource {
  /** Starts delivering to `handlers`; called once. */
  start(handlers: SourceHandlers): void;
  /**
   * Runs a query or mutation over the live connection and resolves with its `data`;
   * rejects with the GraphQL error or when the connection drops before the answer
   * (the caller retries once live again).
   */
  request(operation: SourceOperation): Promise<unknown>;
  /** Stops for good and releases everything. */
  stop(): void;
}
