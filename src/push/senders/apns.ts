/**
 * Apple Push Notification service, directly: `POST /3/device/<token>` over HTTP/2
 * ({@link createHttp2Pool}, through the network policy), with token-based authentication
 * (`authorization: bearer <ES256 JWT>`, ./apns-token.ts) and the app's bundle id as
 * `apns-topic`. The body is an alert (`aps.alert.body`) with the notification's ids beside
 * `aps` as custom keys, as FCM carries them in `data`.
 *
 * Answers, per Apple's "Handling notification responses from APNs": 200 sent (its
 * `apns-id` logged at debug); 410 (`Unregistered`) and 400 `BadDeviceToken` — the app was
 * removed or the token is not a device's — gone; 403 `ExpiredProviderToken` or
 * `InvalidProviderToken` renews the token and sends once more, then fails for good (the
 * key, team or topic is wrong: the operator must act); 429 and 5xx retry, honouring
 * Retry-After; any other answer fails for good, naming Apple's `reason` and the `apns-id`.
 * APNs has no validate-only mode: dry-run logs what it would send.
 */
import type { Logger } from '../../common/logger.js';
import { APNS_URL, type ApnsCredentials } from '../../config/push.js';
import type { NetworkPolicy } from '../network-policy.js';
import type { PushOptions } from '../options.js';
import { createApnsTokens, type ApnsTokens } from './apns-token.js';
import { networkOutcome } from './http.js';
import { createHttp2Pool, retryOutcome, type Http2Response } from './http2-pool.js';
import { pushIds, type DeviceSender, type PushMessage, type SendOutcome } from './types.js';

export interface ApnsSenderOptions {
  credentials: ApnsCredentials;
  /** Log what would be sent instead of sending it. */
  dryRun: boolean;
  /** `PUSH_APNS_URL`: APNs' origin. @default 'https://api.push.apple.com' */
  baseUrl?: string;
  /** A send not answered within this is retried. @default 10000 (ms) */
  requestTimeoutMs?: number;
  /** Most HTTP/2 connections to APNs (Apple allows many streams on each). @default 4 */
  maxConnections?: number;
  /** Where dry-run sends and each `apns-id` are logged. @default console */
  logger?: Logger;
  /** Which addresses APNs' origin may be at (`PUSH_ALLOWED_NETWORKS`). @default public addresses only */
  networkPolicy?: NetworkPolicy;
  /** The clock the provider token's age is read on, ms since the epoch. @default Date.now */
  now?: () => number;
}

/** Apple's reasons for a 403 that a new provider token may cure. */
const TOKEN_REFUSED = new Set(['ExpiredProviderToken', 'InvalidProviderToken']);

export function createApnsSender(options: ApnsSenderOptions): DeviceSender<'APNS'> {
  const { credentials, dryRun } = options;
  const timeoutMs = options.requestTimeoutMs ?? 10_000;
  const logger = options.logger ?? console;
  const now = options.now ?? Date.now;
  const tokens: ApnsTokens = createApnsTokens(credentials, now);
  const pool = createHttp2Pool(options.baseUrl ?? APNS_URL, {
    maxConnections: options.maxConnections ?? 4,
    ...(options.networkPolicy ? { networkPolicy: options.networkPolicy } : {}),
  });

  const post = (message: PushMessage, deviceToken: string, providerToken: string): Promise<Http2Response> =>
    pool.request(
      {
        ':method': 'POST',
        ':path': `/3/device/${deviceToken}`,
        authorization: `bearer ${providerToken}`,
        'apns-topic': credentials.topic,
        'apns-push-type': 'alert',
        'content-type': 'application/json',
        ...apnsOptionHeaders(message.notification.options, now()),
      },
      JSON.stringify(apnsPayload(message)),
      timeoutMs,
    );

  return {
    kind: 'APNS',
    async send(message, device) {
      if (dryRun) {
        logger.info(`push dry-run: would send APNs alert for ${message.notification.id} to device ${device.id} of ${message.user}`);
        return { outcome: 'sent', dryRun: true };
      }
      let providerToken: string;
      try {
        providerToken = tokens.current();
      } catch (error) {
        return { outcome: 'failed', reason: `APNs provider token not signed: ${error instanceof Error ? error.message : String(error)}` };
      }
      try {
        let response = await post(message, device.token, providerToken);
        if (response.status === 403 && TOKEN_REFUSED.has(apnsReason(response.body) ?? '')) {
          response = await post(message, device.token, tokens.renew(providerToken));
        }
        const outcome = apnsOutcome(response);
        if (outcome.outcome === 'sent') logger.debug?.(`push: APNs accepted ${message.notification.id} for device ${device.id} of ${message.user}, apns-id ${apnsId(response)}`);
        return outcome;
      } catch (error) {
        return networkOutcome(error, 'APNs');
      }
    },
    close: () => pool.close(),
  };
}

/** The body: an alert for the user, the ids as custom keys for the app. */
export function apnsPayload(message: PushMessage): Record<string, unknown> {
  return { aps: { alert: { body: message.notification.text } }, ...pushIds(message) };
}

/**
 * The per-notification options as APNs headers: `apns-collapse-id`, `apns-expiration`
 * (Unix seconds; 0 — a `ttl` of 0 — is one attempt, never stored) and `apns-priority`
 * (10 at once, 5 as power allows). `nowMs` is the send's time.
 */
export function apnsOptionHeaders(options: PushOptions | undefined, nowMs: number): Record<string, string> {
  if (options === undefined) return {};
  const headers: Record<string, string> = {};
  if (options.collapseKey !== undefined) headers['apns-collapse-id'] = options.collapseKey;
  if (options.ttl !== undefined) headers['apns-expiration'] = options.ttl === 0 ? '0' : String(Math.floor(nowMs / 1000) + options.ttl);
  if (options.priority !== undefined) headers['apns-priority'] = options.priority === 'HIGH' ? '10' : '5';
  return headers;
}

function apnsOutcome(response: Http2Response): SendOutcome {
  const { status } = response;
  if (status === 200) return { outcome: 'sent', dryRun: false };
  const reasonCode = apnsReason(response.body);
  const reason = `APNs answered ${status}${reasonCode === undefined ? '' : ` ${reasonCode}`} (apns-id ${apnsId(response)})`;
  if (status === 410 || (status === 400 && reasonCode === 'BadDeviceToken')) return { outcome: 'gone', reason };
  if (status === 429 || status >= 500) return retryOutcome(response, reason);
  return { outcome: 'failed', reason };
}

/** The `reason` of an APNs error body, undefined if there is none. */
function apnsReason(body: string): string | undefined {
  try {
    const reason = (JSON.parse(body) as { reason?: unknown } | null)?.reason;
    return typeof reason === 'string' ? reason : undefined;
  } catch {
    return undefined;
  }
}

function apnsId(response: Http2Response): string {
  const id = response.headers['apns-id'];
  return typeof id === 'string' ? id : 'none';
}
