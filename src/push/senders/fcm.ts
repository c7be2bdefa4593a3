/**
 * Firebase Cloud Messaging, HTTP v1 API: `POST /v1/projects/{id}/messages:send` over
 * HTTP/2 ({@link createHttp2Pool}), authorised with an OAuth2 access token that
 * `google-auth-library`'s `JWT` client gets for the service account (a JWT-bearer grant,
 * cached and refreshed by the library).
 *
 * Answers, per FCM's error codes: 200 sent; 404 or `UNREGISTERED` — the app was
 * uninstalled or the token expired — gone; 401 drops the cached token and retries;
 * 429 and 5xx retry, honouring Retry-After; any other answer fails for good.
 * Dry-run sends `validate_only: true`: FCM checks the message and the token, delivers
 * nothing.
 */
import { JWT } from 'google-auth-library';
import type { Logger } from '../../common/logger.js';
import type { NetworkPolicy } from '../network-policy.js';
import type { PushOptions } from '../options.js';
import { apnsOptionHeaders } from './apns.js';
import { networkOutcome } from './http.js';
import { createHttp2Pool, retryOutcome, type Http2Response } from './http2-pool.js';
import { pushIds, type PushMessage, type SendOutcome, type DeviceSender } from './types.js';

import { FCM_URL, GOOGLE_TOKEN_URL, type ServiceAccountKey } from '../../config/push.js';

export { GOOGLE_TOKEN_URL, type ServiceAccountKey } from '../../config/push.js';
export const FCM_SCOPE = 'https://www.googleapis.com/auth/firebase.messaging';

export interface FcmSenderOptions {
  serviceAccount: ServiceAccountKey;
  /** Send with `validate_only: true`: FCM validates, delivers nothing. */
  dryRun: boolean;
  /** `PUSH_FCM_URL`: FCM's origin. @default 'https://fcm.googleapis.com' */
  baseUrl?: string;
  /** `PUSH_FCM_TOKEN_URL`: where access tokens are fetched. @default 'https://oauth2.googleapis.com/token' */
  tokenUrl?: string;
  /** A send not answered within this is retried. @default 10000 (ms) */
  requestTimeoutMs?: number;
  /**
   * Most HTTP/2 connections to FCM; more than one is opened only while every open one
   * is at FCM's stream limit.
   * @default 4
   */
  maxConnections?: number;
  /** Where dry-run validations are logged. @default console */
  logger?: Logger;
  /**
   * Which addresses FCM's origin may be at (`PUSH_ALLOWED_NETWORKS`), checked like every
   * push target's; a refused one is the `refused` outcome.
   * @default public addresses only
   */
  networkPolicy?: NetworkPolicy;
}

export function createFcmSender(options: FcmSenderOptions): DeviceSender<'FCM'> {
  const { serviceAccount, dryRun } = options;
  const timeoutMs = options.requestTimeoutMs ?? 10_000;
  const logger = options.logger ?? console;
  const pool = createHttp2Pool(options.baseUrl ?? FCM_URL, {
    maxConnections: options.maxConnections ?? 4,
    ...(options.networkPolicy ? { networkPolicy: options.networkPolicy } : {}),
  });
  const path = `/v1/projects/${encodeURIComponent(serviceAccount.projectId)}/messages:send`;
  const auth = new JWT({ email: serviceAccount.clientEmail, key: serviceAccount.privateKey, scopes: [FCM_SCOPE] });
  const tokenUrl = options.tokenUrl ?? GOOGLE_TOKEN_URL;
  if (tokenUrl !== GOOGLE_TOKEN_URL) {
    // the library has no option for the token endpoint; its transport does have interceptors
    auth.transporter.interceptors.request.add({
      resolved: async (request) => {
        if (request.url.href === GOOGLE_TOKEN_URL) request.url = new URL(tokenUrl);
        return request;
      },
    });
  }

  const send = async (message: PushMessage, token: string): Promise<SendOutcome> => {
    let accessToken: string | null | undefined;
    try {
      accessToken = (await auth.getAccessToken()).token;
    } catch (error) {
      return { outcome: 'retry', reason: `FCM access token: ${error instanceof Error ? error.message : String(error)}` };
    }
    if (!accessToken) return { outcome: 'retry', reason: 'FCM access token: none issued' };
    let response: Http2Response;
    try {
      response = await pool.request(
        { ':method': 'POST', ':path': path, authorization: `Bearer ${accessToken}`, 'content-type': 'application/json' },
        JSON.stringify(fcmRequest(message, token, dryRun, Date.now())),
        timeoutMs,
      );
    } catch (error) {
      return networkOutcome(error, 'FCM');
    }
    if (response.status === 401) auth.credentials = {}; // fetched afresh on the next attempt
    return fcmOutcome(response, dryRun);
  };

  return {
    kind: 'FCM',
    async send(message, device) {
      const outcome = await send(message, device.token);
      if (dryRun && outcome.outcome === 'sent') {
        logger.info(`push dry-run: FCM validated ${message.notification.id} for device ${device.id} of ${message.user}`);
      }
      return outcome;
    },
    close: () => pool.close(),
  };
}

/**
 * The request body: a notification for the system tray, the ids as data for the app, and
 * the per-notification options in each platform's block (none when none is set).
 */
function fcmRequest(message: PushMessage, token: string, validateOnly: boolean, nowMs: number): Record<string, unknown> {
  const { notification } = message;
  return {
    ...(validateOnly ? { validate_only: true } : {}),
    message: {
      token,
      notification: { body: notification.text },
      // FCM data values must be strings
      data: { ...pushIds(message), timestamp: String(notification.timestamp) },
      ...fcmOptionBlocks(notification.options, nowMs),
    },
  };
}

/**
 * The options as FCM v1 takes them: `android` (`collapse_key`, `ttl` as a duration,
 * `priority`), `apns.headers` (FCM passes Apple's own headers on) and `webpush.headers`
 * (`TTL`, `Urgency`, `Topic`, RFC 8030).
 */
export function fcmOptionBlocks(options: PushOptions | undefined, nowMs: number): Record<string, unknown> {
  if (options === undefined) return {};
  const { collapseKey, ttl, priority } = options;
  const android = {
    ...(collapseKey === undefined ? {} : { collapse_key: collapseKey }),
    ...(ttl === undefined ? {} : { ttl: `${ttl}s` }),
    ...(priority === undefined ? {} : { priority }),
  };
  const apns = apnsOptionHeaders(options, nowMs);
  const webpush = webPushOptionHeaders(options);
  return {
    ...(Object.keys(android).length === 0 ? {} : { android }),
    ...(Object.keys(apns).length === 0 ? {} : { apns: { headers: apns } }),
    ...(Object.keys(webpush).length === 0 ? {} : { webpush: { headers: webpush } }),
  };
}

/** The options as Web Push headers (RFC 8030 §5): `TTL`, `Urgency` (`high`, `normal`), `Topic`. */
export function webPushOptionHeaders(options: PushOptions | undefined): Record<string, string> {
  if (options === undefined) return {};
  return {
    ...(options.ttl === undefined ? {} : { TTL: String(options.ttl) }),
    ...(options.priority === undefined ? {} : { Urgency: options.priority === 'HIGH' ? 'high' : 'normal' }),
    ...(options.collapseKey === undefined ? {} : { Topic: options.collapseKey }),
  };
}

function fcmOutcome(response: Http2Response, dryRun: boolean): SendOutcome {
  const { status } = response;
  if (status === 200) return { outcome: 'sent', dryRun };
  const code = fcmErrorCode(response.body);
  const reason = `FCM answered ${status}${code === undefined ? '' : ` ${code}`}`;
  if (status === 404 || code === 'UNREGISTERED') return { outcome: 'gone', reason };
  if (status === 401 || status === 429 || status >= 500) return retryOutcome(response, reason);
  return { outcome: 'failed', reason };
}

/** The FcmError `errorCode` of an error body, else its `error.status`; undefined if neither. */
function fcmErrorCode(body: string): string | undefined {
  try {
    const parsed: unknown = JSON.parse(body);
    const error = (parsed as { error?: { status?: unknown; details?: unknown } }).error;
    if (Array.isArray(error?.details)) {
      for (const detail of error.details as unknown[]) {
        const code = (detail as { errorCode?: unknown } | null)?.errorCode;
        if (typeof code === 'string') return code;
      }
    }
    return typeof error?.status === 'string' ? error.status : undefined;
  } catch {
    return undefined;
  }
}
