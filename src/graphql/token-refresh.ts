/**
 * `Mutation.refreshToken`: a WebSocket connection takes a fresh token in-band, before
 * its old one expires, so its subscriptions outlive any one token. The new token is
 * verified like any other (`UNAUTHENTICATED` if bad or expired) and must be the same
 * principal's (`authorizeTokenRefresh`: `FORBIDDEN` naming the claims that differ).
 * Accepted, it becomes the connection's (`TokenHolder.tokenRefreshed`), which moves the
 * connection's close deadline to the new `exp`; refused, the connection keeps what it
 * had. Over HTTP and SSE there is no connection to refresh: `BAD_REQUEST`.
 */
import { AuthenticationError, authorizeTokenRefresh, type TokenVerifier } from '../auth/index.js';
import { graphqlError } from '../common/errors.js';
import { Failure } from '../common/failures.js';
import { requirePrincipal, type HeraldContext } from './schema.js';

/** Told to a client that sends `refreshToken` anywhere but over a WebSocket. */
export const REFRESH_NEEDS_A_CONNECTION =
  'refreshToken replaces the token of a WebSocket connection: over HTTP and SSE each request carries its own token in its Authorization header';

/** What `refreshToken` answers: the connection's new expiry, in ms since the epoch. */
export interface TokenRefresh {
  readonly expiresAt: number;
}

export function createTokenRefreshResolvers(verifier: TokenVerifier) {
  const refreshToken = (_root: unknown, args: { token: string }, context: HeraldContext): TokenRefresh => {
    const holder = context.tokenHolder;
    if (holder === undefined) throw graphqlError('BAD_REQUEST', REFRESH_NEEDS_A_CONNECTION);
    try {
      const current = requirePrincipal(holder);
      // A client that sends the header's value would otherwise be told "jwt malformed".
      if (/^Bearer\s/i.test(args.token)) throw new AuthenticationError('send the token itself as `token`, without "Bearer "');
      const next = verifier.verify(args.token);
      authorizeTokenRefresh(current, next);
      holder.tokenRefreshed(next);
      return { expiresAt: next.expiresAt };
    } catch (error) {
      // Anything else is a fault of Herald's, logged by the mask.
      if (error instanceof Failure) holder.tokenRefreshRefused(error);
      throw error;
    }
  };
  return { Mutation: { refreshToken } };
}
