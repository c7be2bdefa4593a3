/**
 * A resume timed end to end: the real graphql-ws client subscribes with a cursor and
 * reads until it has every notification it expects; how long that took, from the
 * subscribe to the last one, gives the catch-up rate.
 */
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { createWaiters } from './waiters.js';

const RESUME = `subscription Resume($userName: String!, $since: ID) {
  onNotificationReceived(userName: $userName, since: $since) { id text timestamp }
}`;

export interface CatchUpOptions {
  /** The subscribe server's `ws://…/graphql`. */
  url: string;
  token: string;
  userName: string;
  since: string;
  /** Notifications to read before it counts as caught up. */
  expected: number;
  /** @default 120000 */
  timeoutMs?: number;
}

export interface CatchUp {
  /** The ids read, in the order they came (the first `expected`). */
  readonly ids: readonly string[];
  /** Milliseconds from the subscribe to the last expected notification. */
  readonly ms: number;
  /** Notifications per second. */
  readonly rate: number;
}

export async function catchUp(options: CatchUpOptions): Promise<CatchUp> {
  const client = createClient({
    url: options.url,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    connectionParams: { authorization: `Bearer ${options.token}` },
  });
  const waiters = createWaiters();
  const ids: string[] = [];
  let failure: unknown;
  try {
    const started = performance.now();
    let finished = 0;
    client.subscribe<{ onNotificationReceived: { id: string } }>(
      { query: RESUME, variables: { userName: options.userName, since: options.since } },
      {
        next: ({ data }) => {
          if (!data || ids.length >= options.expected) return;
          ids.push(data.onNotificationReceived.id);
          if (ids.length === options.expected) {
            finished = performance.now();
            waiters.wake();
          }
        },
        error: (error) => {
          failure = error;
          waiters.wake();
        },
        complete: () => waiters.wake(),
      },
    );
    await waiters.until(
      () => (failure !== undefined ? failure : finished > 0 ? true : undefined),
      `${options.expected} notifications`,
      options.timeoutMs ?? 120_000,
      () => `got ${ids.length}`,
    );
    if (failure !== undefined) throw new Error(`the resume failed after ${ids.length}: ${JSON.stringify(failure)}`);
    const ms = finished - started;
    return { ids, ms, rate: (options.expected / ms) * 1000 };
  } finally {
    await client.dispose();
  }
}
