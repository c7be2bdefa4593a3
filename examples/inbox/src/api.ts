/**
 * Herald's API as the inbox page uses it: queries and the read-state mutation over HTTP
 * (POST /graphql, same origin), and the live inbox subscription over graphql-ws.
 */
import { createClient, type Client, type FormattedExecutionResult } from 'graphql-ws';

export interface InboxNotification {
  readonly id: string;
  readonly text: string;
  readonly timestamp: number;
  readonly audience: 'USER' | 'STORE' | 'COMPANY';
  readonly sender: string;
}

export interface InboxPage {
  readonly userName: string;
  readonly unreadCount: number;
  readonly readUpTo: string | null;
  /** Newest first. */
  readonly notifications: readonly InboxNotification[];
}

export type InboxEvent =
  | ({ readonly __typename: 'Notification' } & InboxNotification)
  | { readonly __typename: 'ReadStateChange'; readonly readUpTo: string };

/** A GraphQL error the server answered with; `code` is its `extensions.code`. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
  }
}

const NOTIFICATION_FIELDS = 'id text timestamp audience sender';

const LOAD = `query Inbox($first: Int!) {
  viewer { name }
  notifications(first: $first) { unreadCount readUpTo edges { node { ${NOTIFICATION_FIELDS} } } }
}`;

const UNREAD = `query Unread { notifications(first: 1) { unreadCount readUpTo } }`;

const MARK_READ = `mutation MarkRead($userName: String!, $upTo: ID!) {
  markNotificationsRead(userName: $userName, upTo: $upTo) { readUpTo unreadCount }
}`;

const INBOX_EVENTS = `subscription InboxEvents($userName: String!, $since: ID) {
  onInboxEvent(userName: $userName, since: $since) {
    __typename
    ... on Notification { ${NOTIFICATION_FIELDS} }
    ... on ReadStateChange { readUpTo }
  }
}`;

type Errors = FormattedExecutionResult['errors'];

function firstError(errors: Errors): ApiError | undefined {
  const error = errors?.[0];
  if (!error) return undefined;
  const code = error.extensions?.['code'];
  return new ApiError(error.message, typeof code === 'string' ? code : undefined);
}

export interface Api {
  load(first: number): Promise<InboxPage>;
  unread(): Promise<{ unreadCount: number; readUpTo: string | null }>;
  markRead(userName: string, upTo: string): Promise<{ unreadCount: number; readUpTo: string }>;
  /**
   * Opens one socket and the inbox subscription on it, resuming after `since`. Every
   * ending — the socket closed, the server refused — is `onDrop`; the caller reconnects.
   */
  listen(options: ListenOptions): () => void;
}

export interface ListenOptions {
  readonly userName: string;
  readonly since: string | undefined;
  onConnected(): void;
  onEvent(event: InboxEvent): void;
  onError(error: ApiError): void;
  onDrop(reason: string): void;
}

export function createApi(token: string, origin: URL): Api {
  const httpUrl = new URL('/graphql', origin).toString();
  const wsUrl = httpUrl.replace(/^http/, 'ws');

  async function request<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
    const response = await fetch(httpUrl, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/graphql-response+json, application/json', Authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await response.json()) as FormattedExecutionResult<Record<string, unknown>>;
    const error = firstError(body.errors);
    if (error) throw error;
    if (!body.data) throw new ApiError(`HTTP ${response.status} without data`, undefined);
    return body.data as T;
  }

  return {
    async load(first) {
      const data = await request<{
        viewer: { name: string };
        notifications: { unreadCount: number; readUpTo: string | null; edges: Array<{ node: InboxNotification }> };
      }>(LOAD, { first });
      return {
        userName: data.viewer.name,
        unreadCount: data.notifications.unreadCount,
        readUpTo: data.notifications.readUpTo,
        notifications: data.notifications.edges.map(({ node }) => node),
      };
    },
    async unread() {
      return (await request<{ notifications: { unreadCount: number; readUpTo: string | null } }>(UNREAD)).notifications;
    },
    async markRead(userName, upTo) {
      return (await request<{ markNotificationsRead: { unreadCount: number; readUpTo: string } }>(MARK_READ, { userName, upTo })).markNotificationsRead;
    },
    listen(options) {
      let dropped = false;
      const drop = (reason: string): void => {
        if (dropped) return;
        dropped = true;
        client.dispose();
        options.onDrop(reason);
      };
      // No retries inside graphql-ws: a retried subscription would resend the `since` it
      // started with. The page reconnects itself, resuming after the last id it showed.
      const client: Client = createClient({
        url: wsUrl,
        lazy: false,
        retryAttempts: 0,
        keepAlive: 10_000,
        connectionParams: { authorization: `Bearer ${token}` },
        on: {
          connected: () => options.onConnected(),
          closed: (event) => drop(closeReason(event)),
        },
      });
      client.subscribe<{ onInboxEvent: InboxEvent }>(
        { query: INBOX_EVENTS, variables: { userName: options.userName, ...(options.since ? { since: options.since } : {}) } },
        {
          next: (result) => {
            const error = firstError(result.errors);
            if (error) options.onError(error);
            if (result.data) options.onEvent(result.data.onInboxEvent);
          },
          error: (error) => drop(closeReason(error)),
          complete: () => drop('the server ended the subscription'),
        },
      );
      return () => {
        dropped = true;
        client.dispose();
      };
    },
  };
}

function closeReason(event: unknown): string {
  if (event instanceof CloseEvent) return event.reason || `socket closed (${event.code})`;
  if (Array.isArray(event)) return firstError(event as Errors)?.message ?? 'refused';
  return event instanceof Error ? event.message : 'connection lost';
}
