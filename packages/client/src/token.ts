/**
 * Tokens: a string or a function that mints one. The client reads `exp` (and `iat`) from
 * the JWT's payload without verifying it — the server verifies; the client only needs to
 * know when to ask for the next one.
 */
import type { TokenSource } from './types.js';

export interface TokenClaims {
  /** `exp` in ms since the epoch, if the token has one. */
  readonly expiresAt: number | undefined;
  /** `iat` in ms since the epoch, if present. */
  readonly issuedAt: number | undefined;
  /** `sub`, if a string. */
  readonly subject: string | undefined;
}

/** Decodes a JWT's payload (no verification). Anything unreadable gives empty claims. */
export function readTokenClaims(token: string): TokenClaims {
  try {
    const part = token.split('.')[1] ?? '';
    const base64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const binary = atob(base64 + '='.repeat((4 - (base64.length % 4)) % 4));
    const json = new TextDecoder().decode(Uint8Array.from(binary, (char) => char.charCodeAt(0)));
    const payload: unknown = JSON.parse(json);
    if (typeof payload !== 'object' || payload === null) return { expiresAt: undefined, issuedAt: undefined, subject: undefined };
    const claims = payload as Record<string, unknown>;
    const seconds = (value: unknown): number | undefined => (typeof value === 'number' && Number.isFinite(value) ? value * 1000 : undefined);
    return { expiresAt: seconds(claims['exp']), issuedAt: seconds(claims['iat']), subject: typeof claims['sub'] === 'string' ? claims['sub'] : undefined };
  } catch {
    return { expiresAt: undefined, issuedAt: undefined, subject: undefined };
  }
}

/** Refresh at 75 % of the lifetime, or this long before `exp`, whichever comes first. */
const REFRESH_BEFORE_EXPIRY_MS = 10_000;
const REFRESH_AT_FRACTION = 0.75;

/**
 * When to refresh a token received at `receivedAt` (ms): at 75 % of its lifetime (from
 * `iat`, or from `receivedAt` without one) or 10 s before `exp`, whichever is earlier;
 * undefined for a token without `exp`.
 */
export function refreshAt(claims: TokenClaims, receivedAt: number): number | undefined {
  if (claims.expiresAt === undefined) return undefined;
  const start = Math.min(claims.issuedAt ?? receivedAt, receivedAt);
  const lifetime = claims.expiresAt - start;
  return Math.min(start + lifetime * REFRESH_AT_FRACTION, claims.expiresAt - REFRESH_BEFORE_EXPIRY_MS);
}

export interface TokenSupplier {
  /** Whether a fresh token can be had (a function), or only the one string. */
  readonly refreshable: boolean;
  /** A token: the string, or the function's next one (the first call reuses the one {@link peek} fetched). */
  next(): Promise<string>;
  /** The first token, fetched once (to learn `sub` before connecting); the next `next()` returns it. */
  peek(): Promise<string>;
}

export function createTokenSupplier(source: TokenSource): TokenSupplier {
  if (typeof source === 'string') return { refreshable: false, next: async () => source, peek: async () => source };
  let primed: Promise<string> | undefined;
  return {
    refreshable: true,
    peek() {
      primed ??= Promise.resolve().then(source);
      return primed;
    },
    next() {
      if (primed) {
        const first = primed;
        primed = undefined;
        return first;
      }
      return Promise.resolve().then(source);
    },
  };
}
