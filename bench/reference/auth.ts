/**
 * Token handling shared by both reference servers, the same as Herald's
 * (`src/auth/tokens.ts`): the HS256 secret becomes a `KeyObject` once, at start-up, and a
 * token verified once is remembered until it expires. Given a string secret,
 * jsonwebtoken would try to parse it as a public key on every call; verifying the
 * publisher's one token again on every mutation would charge a reference for work Herald
 * does not do. Neither is a framework's cost, so neither may differ between the systems.
 */
import { createSecretKey, type KeyObject } from 'node:crypto';
import jwt from 'jsonwebtoken';

/** The claims the references use. */
export interface Claims {
  readonly sub: string;
  readonly scope: string;
  /** Expiry, in Unix seconds. */
  readonly exp: number;
}

export interface ReferenceAuthOptions {
  /** The HS256 secret (the bench's `JWT_SECRET`). */
  readonly secret: string;
  /**
   * Verified tokens remembered, as Herald's LRU does; past it the oldest is forgotten.
   * @default 1000
   */
  readonly cacheSize?: number;
}

export interface ReferenceAuth {
  /** The claims of `Bearer <jwt>` (a header or a `connection_init` field); throws when refused. */
  verifyBearer(authorization: unknown): Claims;
}

export function createReferenceAuth(options: ReferenceAuthOptions): ReferenceAuth {
  const key: KeyObject = createSecretKey(Buffer.from(options.secret));
  const cacheSize = options.cacheSize ?? 1000;
  // Insertion order is age: the first key is the oldest.
  const verified = new Map<string, Claims>();
  return {
    verifyBearer(authorization) {
      if (typeof authorization !== 'string' || !authorization.startsWith('Bearer ')) throw new Error('missing token');
      const token = authorization.slice('Bearer '.length);
      const known = verified.get(token);
      if (known !== undefined && known.exp * 1000 > Date.now()) return known;
      const payload = jwt.verify(token, key, { algorithms: ['HS256'] });
      if (typeof payload === 'string' || typeof payload.sub !== 'string' || typeof payload.exp !== 'number') {
        throw new Error('token without sub or exp');
      }
      const claims: Claims = { sub: payload.sub, scope: typeof payload['scope'] === 'string' ? payload['scope'] : '', exp: payload.exp };
      if (verified.size >= cacheSize) verified.delete(verified.keys().next().value as string);
      verified.set(token, claims);
      return claims;
    },
  };
}

/** Whether `claims` may publish (Herald's `notifications:publish` scope). */
export const canPublish = (claims: Claims): boolean => claims.scope.split(' ').includes('notifications:publish');
