/** The operations the client sends, and reading GraphQL results that arrive as `unknown`. */

const NOTIFICATION_FIELDS = 'id text timestamp audience sender';

export const INBOX_SUBSCRIPTION = `subscription HeraldInbox($userName: String!, $since: ID) {
  onInboxEvent(userName: $userName, since: $since) {
    __typename
    ... on Notification { ${NOTIFICATION_FIELDS} }
    ... on ReadStateChange { readUpTo }
  }
}`;

export const REFRESH_TOKEN_MUTATION = 'mutation HeraldRefreshToken($token: String!) { refreshToken(token: $token) { expiresAt } }';

export const MARK_READ_MUTATION = 'mutation HeraldMarkRead($userName: String!, $upTo: ID!) { markNotificationsRead(userName: $userName, upTo: $upTo) { readUpTo unreadCount } }';

export const RECENT_QUERY = `query HeraldRecent($first: Int!) {
  notifications(first: $first) { edges { node { ${NOTIFICATION_FIELDS} } } readUpTo unreadCount }
}`;

/** A GraphQL error as the server formats it. */
export interface GraphQLFailure {
  readonly message: string;
  /** `extensions.code`, or `UNKNOWN`. */
  readonly code: string;
}

/** An operation answered with errors. */
export class GraphQLResultError extends Error {
  override readonly name = 'GraphQLResultError';
  constructor(readonly failure: GraphQLFailure) {
    super(`${failure.code}: ${failure.message}`);
  }
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

/** The first error of a result's (or an `error` message's) error list, if any. */
export function firstFailure(errors: unknown): GraphQLFailure | undefined {
  const first: unknown = Array.isArray(errors) ? errors[0] : undefined;
  if (!isRecord(first)) return undefined;
  const extensions = first['extensions'];
  const code = isRecord(extensions) && typeof extensions['code'] === 'string' ? extensions['code'] : 'UNKNOWN';
  return { message: typeof first['message'] === 'string' ? first['message'] : 'unknown error', code };
}
