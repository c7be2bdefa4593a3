/**
 * The provider token of APNs' token-based authentication: an ES256 JWT, header
 * `{ alg: 'ES256', kid }`, claims `{ iss: <team id>, iat }`, signed with the `.p8` key
 * (node:crypto; the signature in JOSE's r‖s form, not DER).
 *
 * Apple refuses a token older than an hour (`ExpiredProviderToken`) and throttles one
 * renewed more often than every 20 minutes (`TooManyProviderTokenUpdates`), so one token
 * is shared by every send and renewed after {@link APNS_TOKEN_RENEW_MS}, and a forced
 * renewal (after APNs refused the token) renews only the token it refused.
 */
import { createPrivateKey, sign, type KeyObject } from 'node:crypto';
import type { ApnsCredentials } from '../../config/push.js';

/** A token is renewed once this old: 50 minutes, inside Apple's hour, past its 20 minutes. */
export const APNS_TOKEN_RENEW_MS = 50 * 60 * 1000;

export interface ApnsTokens {
  /** The current token, signed anew when it is {@link APNS_TOKEN_RENEW_MS} old. */
  current(): string;
  /**
   * APNs refused `refused` (expired or invalid): a new one is signed, unless another send
   * already renewed it. Returns the token to try again with.
   */
  renew(refused: string): string;
}

export function createApnsTokens(credentials: Pick<ApnsCredentials, 'keyId' | 'teamId' | 'privateKey'>, now: () => number = Date.now): ApnsTokens {
  const key: KeyObject = createPrivateKey(credentials.privateKey);
  let token: { value: string; signedAt: number } | undefined;
  const signNew = (): string => {
    const signedAt = now();
    token = { value: signApnsToken(credentials.keyId, credentials.teamId, key, Math.floor(signedAt / 1000)), signedAt };
    return token.value;
  };
  return {
    current: () => (token !== undefined && now() - token.signedAt < APNS_TOKEN_RENEW_MS ? token.value : signNew()),
    renew: (refused) => (token !== undefined && token.value !== refused ? token.value : signNew()),
  };
}

/** One provider token, `iat` in Unix seconds. */
export function signApnsToken(keyId: string, teamId: string, key: KeyObject, iat: number): string {
  const header = Buffer.from(JSON.stringify({ alg: 'ES256', kid: keyId })).toString('base64url');
  const claims = Buffer.from(JSON.stringify({ iss: teamId, iat })).toString('base64url');
  const signature = sign('sha256', Buffer.from(`${header}.${claims}`), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url');
  return `${header}.${claims}.${signature}`;
}
