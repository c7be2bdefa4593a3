/**
 * Verifies JWTs into a {@link Principal}: explicit algorithm list, `exp` required,
 * every claim that becomes part of a channel name validated.
 */
import { randomBytes } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { assertValidName, InvalidNameError } from '../names/index.js';
import { Failure } from '../common/failures.js';
import { createLruCache } from '../common/lru.js';
import { publicKey, secretKey, type VerificationKey } from '../config/jwt-key.js';
import { isExpired, type Principal } from './principal.js';

/** Why a token was refused; `message` is safe to show to the client. */
export class AuthenticationError extends Failure {
  override readonly name = 'AuthenticationError';
  constructor(message: string) {
    super('UNAUTHENTICATED', message);
  }
}

export interface TokenVerifierOptions {
  /** HS256 shared secret. Exactly one of `secret` and `publicKey` is given. */
  secret?: string | undefined;
  /** PEM of an RSA (RS256) or EC P-256 (ES256) public key. */
  publicKey?: string | undefined;
  /**
   * Most store ids accepted in one token; each is a channel the subscriber opens.
   * @default 50
   */
  maxStores?: number;
  /**
   * Verified tokens remembered, so a service that sends the same token with every
   * request pays for its signature once. A remembered token is still refused once it
   * expires. 0 turns it off.
   * @default 1000
   */
  cacheSize?: number;
  /**
   * Told why each token was refused (the process's metrics count them by reason).
   * @default nothing
   */
  onRefused?: (reason: RefusalReason) => void;
}

/** Why a token was refused, in few enough kinds to be a metric's label. */
export type RefusalReason = 'missing' | 'expired' | 'not-yet-valid' | 'signature' | 'malformed' | 'claims';

export interface VerifyOptions {
  /**
   * Whether a refusal is reported to `onRefused`. False for a look at a token that the
   * same request has verified again, counted, where it is answered.
   * @default true
   */
  counted?: boolean;
}

export interface TokenVerifier {
  /**
   * Verifies `token`, refusing an expired one (remembered or not); throws
   * {@link AuthenticationError} saying what was wrong.
   */
  verify(token: unknown, options?: VerifyOptions): Principal;
}

export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  const { key, algorithm } = verificationKey(options);
  const maxStores = options.maxStores ?? 50;
  const verified = createLruCache<string, Principal>(options.cacheSize ?? 1000);
  const onRefused = options.onRefused ?? (() => undefined);
  const verify = (token: unknown): Principal => {
    if (typeof token !== 'string' || token.length === 0) {
      throw new AuthenticationError('missing token: send "Authorization: Bearer <jwt>"');
    }
    const known = verified.get(token);
    if (known !== undefined) {
      if (isExpired(known)) {
        verified.delete(token);
        throw new AuthenticationError('token expired');
      }
      return known;
    }
    let claims: string | jwt.JwtPayload;
    try {
      claims = jwt.verify(token, key, { algorithms: [algorithm] });
    } catch (error) {
      throw new AuthenticationError(describeJwtError(error));
    }
    if (typeof claims === 'string') throw new AuthenticationError('token payload is not a JSON object');
    const principal = principalFromClaims(claims, maxStores);
    verified.set(token, principal);
    return principal;
  };
  return {
    verify(token, { counted = true } = {}) {
      try {
        return verify(token);
      } catch (error) {
        if (counted && error instanceof AuthenticationError) onRefused(refusalReason(token, error));
        throw error;
      }
    },
  };
}

/** The kind of a refusal, from what was refused and the message it was refused with. */
function refusalReason(token: unknown, error: AuthenticationError): RefusalReason {
  if (typeof token !== 'string' || token.length === 0) return 'missing';
  if (error.message === 'token expired') return 'expired';
  if (error.message.startsWith('token not active')) return 'not-yet-valid';
  if (/signature|algorithm/.test(error.message)) return 'signature';
  if (/malformed|jwt must be|invalid token|unexpected token/i.test(error.message)) return 'malformed';
  return 'claims';
}

/**
 * The principal of an optional `Authorization` header: undefined without one; throws
 * {@link AuthenticationError} for a malformed header or a refused token.
 */
export function principalFromHeader(verifier: TokenVerifier, header: unknown, options?: VerifyOptions): Principal | undefined {
  const token = bearerToken(header);
  return token === undefined ? undefined : verifier.verify(token, options);
}

/** Takes the token out of `Bearer <jwt>` (case-insensitive scheme); undefined if absent. */
export function bearerToken(header: unknown): string | undefined {
  if (typeof header !== 'string') return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match) throw new AuthenticationError('malformed authorization: expected "Bearer <jwt>"');
  return match[1];
}

/** A random HS256 secret for dev mode. */
export function generateDevSecret(): string {
  return randomBytes(32).toString('base64url');
}

function verificationKey(options: TokenVerifierOptions): VerificationKey {
  if (options.secret !== undefined && options.publicKey !== undefined) {
    throw new Error('give a token verifier either a secret or a public key, not both');
  }
  if (options.secret !== undefined) return secretKey(options.secret);
  if (options.publicKey === undefined) throw new Error('a token verifier needs a secret or a public key');
  return publicKey(options.publicKey);
}

const NO_STORES: readonly string[] = Object.freeze([]);
const NO_SCOPES: ReadonlySet<string> = new Set();

function principalFromClaims(claims: jwt.JwtPayload, maxStores: number): Principal {
  if (typeof claims.exp !== 'number') throw new AuthenticationError('token has no "exp" claim');
  const stores = claims['stores'] ?? [];
  if (!Array.isArray(stores)) throw new AuthenticationError('token claim "stores" must be an array of store ids');
  if (stores.length > maxStores) throw new AuthenticationError(`token claim "stores" lists more than ${maxStores} stores`);
  const scope: unknown = claims['scope'] ?? '';
  if (typeof scope !== 'string') throw new AuthenticationError('token claim "scope" must be a space-separated string');
  try {
    return {
      name: assertValidName('token claim "sub"', claims.sub),
      tenant: assertValidName('token claim "tenant"', claims['tenant']),
      // Most subscribers' tokens have neither: they share one empty of each, as every
      // connection keeps its principal for hours (two empty collections per idle connection).
      stores: stores.length === 0 ? NO_STORES : [...new Set(stores.map((store: unknown) => assertValidName('a store id in token claim "stores"', store)))],
      scopes: scope === '' ? NO_SCOPES : new Set(scope.split(' ').filter(Boolean)),
      expiresAt: claims.exp * 1000,
    };
  } catch (error) {
    if (error instanceof InvalidNameError) throw new AuthenticationError(error.message);
    throw error;
  }
}

function describeJwtError(error: unknown): string {
  if (error instanceof jwt.TokenExpiredError) return 'token expired';
  if (error instanceof jwt.NotBeforeError) return 'token not active yet ("nbf")';
  if (error instanceof jwt.JsonWebTokenError) {
    // jsonwebtoken's messages ("invalid signature", "invalid algorithm", "jwt malformed")
    // describe the token only, never the key, so they are safe to return.
    return `token rejected: ${error.message}`;
  }
  return 'token rejected';
}
