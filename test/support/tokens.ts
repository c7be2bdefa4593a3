/** Signs test tokens; every test server verifies with {@link TEST_SECRET}. */
import jwt from 'jsonwebtoken';

export const TEST_SECRET = 'test-secret-that-is-at-least-32-bytes-long';

export interface Claims {
  sub?: unknown;
  tenant?: unknown;
  stores?: unknown;
  scope?: unknown;
  [claim: string]: unknown;
}

/** A user token: `sub` = `name`, tenant `acme` unless `claims` say otherwise; valid for an hour. */
export function userToken(name: string, claims: Claims = {}, expiresInSeconds = 3600): string {
  return jwt.sign({ sub: name, tenant: 'acme', ...claims }, TEST_SECRET, { algorithm: 'HS256', expiresIn: expiresInSeconds });
}

/** A service token with the publish scope, tenant `acme` unless `claims` say otherwise. */
export function serviceToken(claims: Claims = {}): string {
  return jwt.sign({ sub: 'billing', tenant: 'acme', scope: 'notifications:publish', ...claims }, TEST_SECRET, {
    algorithm: 'HS256',
    expiresIn: 3600,
  });
}

/** Signs exactly `payload` with the test secret (no `exp` added). */
export function rawToken(payload: object): string {
  return jwt.sign(payload, TEST_SECRET, { algorithm: 'HS256' });
}
