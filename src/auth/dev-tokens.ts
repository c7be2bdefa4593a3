/**
 * Tokens for dev mode (no `JWT_SECRET` outside production): a sample user and a sample
 * publishing service, signed with the generated secret and printed at start-up.
 */
import jwt from 'jsonwebtoken';
import { PUBLISH_SCOPE } from './policy.js';

export interface DevTokens {
  readonly user: { readonly name: string; readonly tenant: string; readonly stores: readonly string[]; readonly token: string };
  readonly service: { readonly name: string; readonly tenant: string; readonly token: string };
}

/** Signs the sample tokens with `secret` (HS256), valid for `ttlSeconds`. */
export function signDevTokens(secret: string, ttlSeconds = 24 * 3600): DevTokens {
  const tenant = 'acme';
  const stores = ['store-1'];
  const sign = (claims: object) => jwt.sign(claims, secret, { algorithm: 'HS256', expiresIn: ttlSeconds });
  return {
    user: { name: 'alice', tenant, stores, token: sign({ sub: 'alice', tenant, stores }) },
    service: { name: 'billing', tenant, token: sign({ sub: 'billing', tenant, scope: PUBLISH_SCOPE }) },
  };
}
