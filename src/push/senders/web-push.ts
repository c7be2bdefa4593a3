/**
 * Web Push (RFC 8030) with VAPID (RFC 8292) and the aes128gcm payload encryption
 * (RFC 8291), through `web-push`'s `generateRequestDetails`; the request itself goes out
 * through the senders' HTTP edge ({@link createHttpPoster}), so the same code reaches a
 * push service and a test's local endpoint, and only at addresses the network policy allows.
 */
import webPush from 'web-push';
import type { Logger } from '../../common/logger.js';
import { createNetworkPolicy, type NetworkPolicy } from '../network-policy.js';
import { createHttpPoster, networkOutcome, retryOrFail } from './http.js';
import { pushPayload, type DeviceSender } from './types.js';

export type { VapidKeys } from '../../config/push.js';
import type { VapidKeys } from '../../config/push.js';

export interface WebPushSenderOptions {
  vapid: VapidKeys;
  /** Log what would be sent instead of sending it. */
  dryRun: boolean;
  /** How long the push service keeps a push for an offline browser, in seconds. @default 86400 */
  ttlSeconds?: number;
  /** A push not answered within this is retried. @default 10000 (ms) */
  requestTimeoutMs?: number;
  /** Where dry-run sends are logged. @default console */
  logger?: Logger;
  /**
   * Which addresses a push service endpoint may be at (`PUSH_ALLOWED_NETWORKS`); a
   * refused endpoint is the `refused` outcome, and nothing connects to it.
   * @default public addresses only
   */
  networkPolicy?: NetworkPolicy;
}

export function createWebPushSender(options: WebPushSenderOptions): DeviceSender<'WEB_PUSH'> {
  const timeoutMs = options.requestTimeoutMs ?? 10_000;
  const ttl = options.ttlSeconds ?? 86_400;
  const logger = options.logger ?? console;
  const poster = createHttpPoster(options.networkPolicy ?? createNetworkPolicy());
  return {
    kind: 'WEB_PUSH',
    async send(message, device) {
      let request: webPush.RequestDetails;
      try {
        // the notification's own options (RFC 8030 §5: TTL, Urgency, Topic) over the sender's TTL
        const { ttl: notificationTtl, priority, collapseKey } = message.notification.options ?? {};
        request = webPush.generateRequestDetails(device.subscription, JSON.stringify(pushPayload(message)), {
          vapidDetails: options.vapid,
          TTL: notificationTtl ?? ttl,
          ...(priority === undefined ? {} : { urgency: priority === 'HIGH' ? 'high' : 'normal' }),
          ...(collapseKey === undefined ? {} : { topic: collapseKey }),
          contentEncoding: webPush.supportedContentEncodings.AES_128_GCM,
        });
      } catch (error) {
        // a payload over the 4 KB Web Push limit, or a subscription the library refuses
        return { outcome: 'failed', reason: `web push request not built: ${error instanceof Error ? error.message : String(error)}` };
      }
      if (options.dryRun) {
        logger.info(`push dry-run: would send web push for ${message.notification.id} to device ${device.id} of ${message.user}`);
        return { outcome: 'sent', dryRun: true };
      }
      try {
        const headers = Object.fromEntries(Object.entries(request.headers).map(([name, value]) => [name, String(value)]));
        const result = await poster.post(request.endpoint, headers, request.body ?? Buffer.alloc(0), timeoutMs);
        if (result.status >= 200 && result.status < 300) return { outcome: 'sent', dryRun: false };
        // RFC 8030 §7.3: the subscription expired or was removed
        if (result.status === 404 || result.status === 410) return { outcome: 'gone', reason: `push service answered ${result.status}` };
        return retryOrFail(result, 'push service');
      } catch (error) {
        return networkOutcome(error, 'push service');
      }
    },
    close: async () => poster.close(),
  };
}
