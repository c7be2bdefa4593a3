/**
 * Verifies JWTs into a {@link Principal}: explicit algorithm list, `exp` required,
 * every claim that becomes part of a channel name validated.
 */
import { createPublicKey, createSecretKey, randomBytes } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { assertValidName, InvalidNameError } from '../channels/index.js';
import { Failure } from '../common/failures.js';
import { createLruCache } from '../common/lru.js';
import { isExpired } from './policy.js';

/** The verified identity behind a token. */
export interface Principal {
  /** `sub`: the user's (or service's) name. */
  readonly name: string;
  /** `tenant`: the company every channel of this principal lives in. */
  readonly tenant: string;
  /** `stores`: store ids the user belongs to. */
  readonly stores: readonly string[];
  /** `scope`, split on spaces. */
  readonly scopes: ReadonlySet<string>;
  /** `exp`, in milliseconds since the epoch. */
  readonly expiresAt: number;
}

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
}

export interface TokenVerifier {
  /** The algorithms accepted, for logs and docs. */
  readonly algorithms: readonly jwt.Algorithm[];
  /**
   * Verifies `token`, refusing an expired one (remembered or not); throws
   * {@link AuthenticationError} saying what was wrong.
   */
  verify(token: unknown): Principal;
}

export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  const { key, algorithms } = keyAndAlgorithms(options);
  const maxStores = options.maxStores ?? 50;
  const verified = createLruCache<string, Principal>(options.cacheSize ?? 1000);
  return {
    algorithms,
    verify(token) {
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
        claims = jwt.verify(token, key, { algorithms: [...algorithms] });
      } catch (error) {
        throw new AuthenticationError(describeJwtError(error));
      }
      if (typeof claims === 'string') throw new AuthenticationError('token payload is not a JSON object');
      const principal = principalFromClaims(claims, maxStores);
      verified.set(token, principal);
      return principal;
    },
  };
}

/**
 * The principal of an optional `Authorization` header: undefined without one; throws
 * {@link AuthenticationError} for a malformed header or a refused token.
 */
export function principalFromHeader(verifier: TokenVerifier, header: unknown): Principal | undefined {
  const token = bearerToken(header);
  return token === undefined ? undefined : verifier.verify(token);
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

function keyAndAlgorithms(options: TokenVerifierOptions): { key: jwt.Secret; algorithms: jwt.Algorithm[] } {
  if (options.secret !== undefined && options.publicKey !== undefined) {
    throw new Error('give a token verifier either a secret or a public key, not both');
  }
  // A KeyObject, not the string: given a string, jsonwebtoken tries createPublicKey on
  // every verify and falls back after the exception, which costs more than the HMAC.
  if (options.secret !== undefined) return { key: createSecretKey(Buffer.from(options.secret)), algorithms: ['HS256'] };
  if (options.publicKey === undefined) throw new Error('a token verifier needs a secret or a public key');
  const key = createPublicKey(options.publicKey);
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return { key, algorithms: ['RS256'] };
    case 'ec':
      if (key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
        throw new Error(`JWT_PUBLIC_KEY is an EC key on ${key.asymmetricKeyDetails?.namedCurve ?? 'an unknown curve'}: ES256 needs P-256`);
      }
      return { key, algorithms: ['ES256'] };
    default:
      throw new Error(`JWT_PUBLIC_KEY is a ${key.asymmetricKeyType ?? 'unknown'} key: use an RSA or EC P-256 key`);
  }
}

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
      stores: [...new Set(stores.map((store: unknown) => assertValidName('a store id in token claim "stores"', store)))],
      scopes: new Set(scope.split(' ').filter(Boolean)),
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
