/**
 * The shapes of the push senders' credentials, read and checked with the rest of the
 * configuration (config sits below the push worker: the senders import these from here).
 */

export const FCM_URL = 'https://fcm.googleapis.com';
/** The token endpoint google-auth-library posts to; also the `aud` of the JWT it signs. */
export const GOOGLE_TOKEN_URL = 'https://oauth2.googleapis.com/token';

/** The fields Herald uses of a service-account key file. */
export interface ServiceAccountKey {
  readonly projectId: string;
  readonly clientEmail: string;
  /** PEM. */
  readonly privateKey: string;
}

/** Parses a service-account key file's JSON; throws an error naming the missing field. */
export function parseServiceAccountKey(json: string): ServiceAccountKey {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw new Error('is not JSON');
  }
  if (typeof value !== 'object' || value === null) throw new Error('is not a JSON object');
  const fields = value as Record<string, unknown>;
  const field = (name: string): string => {
    const found = fields[name];
    if (typeof found !== 'string' || found === '') throw new Error(`has no "${name}"`);
    return found;
  };
  if (fields['type'] !== 'service_account') throw new Error('is not a service-account key ("type" is not "service_account")');
  const privateKey = field('private_key');
  if (!privateKey.includes('PRIVATE KEY')) throw new Error('has a "private_key" that is not a PEM private key');
  return { projectId: field('project_id'), clientEmail: field('client_email'), privateKey };
}

export interface VapidKeys {
  /** `mailto:` or `https:` contact for the push service's operator. */
  subject: string;
  /** Base64url uncompressed P-256 public key (65 bytes), the one browsers subscribe with. */
  publicKey: string;
  /** Base64url P-256 private key (32 bytes). */
  privateKey: string;
}

/** Apple's production APNs host (`PUSH_APNS_URL`'s default); the sandbox is `https://api.sandbox.push.apple.com`. */
export const APNS_URL = 'https://api.push.apple.com';

/** What token-based (`.p8`) APNs authentication is made of. */
export interface ApnsCredentials {
  /** `PUSH_APNS_KEY_ID`: the key's 10-character id, the JWT header's `kid`. */
  readonly keyId: string;
  /** `PUSH_APNS_TEAM_ID`: the developer team's 10-character id, the JWT's `iss`. */
  readonly teamId: string;
  /** `PUSH_APNS_KEY` (or `_FILE`): the `.p8` file's PEM, a P-256 private key. */
  readonly privateKey: string;
  /** `PUSH_APNS_TOPIC`: the app's bundle id, sent as `apns-topic`. */
  readonly topic: string;
}

/** Apple's key and team ids: 10 upper-case letters and digits. */
export const APPLE_ID_PATTERN = /^[A-Z0-9]{10}$/;
/** A bundle id (reverse-DNS), perhaps with a push-type suffix such as `.voip`. */
export const BUNDLE_ID_PATTERN = /^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$/;
