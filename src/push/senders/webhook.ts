/**
 * Webhook deliveries, signed per the Standard Webhooks spec (standardwebhooks.com):
 * `webhook-id` is stable across retries of one notification to one device, so a receiver
 * can drop repeats; `webhook-timestamp` is the attempt's time (receivers refuse stale
 * ones); `webhook-signature` is `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
 *
 * Per the spec, any answer but 2xx is retried, except 410 Gone, which removes the device.
 * A URL whose address is internal is never connected to (`refused`, the device kept).
 */
import { createHash } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import type { Logger } from '../../common/logger.js';
import type { Device } from '../device-address.js';
import { createNetworkPolicy, type NetworkPolicy } from '../network-policy.js';
import { createHttpPoster, networkOutcome, retryAnswer } from './http.js';
import { pushPayload, type PushMessage, type DeviceSender } from './types.js';

export interface WebhookSenderOptions {
  /** `PUSH_WEBHOOK_SECRET`: `whsec_` and the base64 key shared with receivers. */
  secret: string;
  /** Log what would be sent instead of sending it. */
  dryRun: boolean;
  /** A delivery not answered within this is retried. @default 10000 (ms) */
  requestTimeoutMs?: number;
  /** Where dry-run sends are logged. @default console */
  logger?: Logger;
  /**
   * Which addresses a delivery may connect to (`PUSH_ALLOWED_NETWORKS`); a refused URL is
   * the `refused` outcome, and nothing connects to it.
   * @default public addresses only
   */
  networkPolicy?: NetworkPolicy;
}

/** The `webhook-id` of `message` to `device`: the same for every attempt. */
export function webhookId(message: PushMessage, device: Pick<Device, 'id'>): string {
  const { tenant, id } = message.notification;
  return `msg_${createHash('sha256').update(`${tenant}\0${id}\0${message.user}\0${device.id}`).digest('base64url').slice(0, 27)}`;
}

export function createWebhookSender(options: WebhookSenderOptions): DeviceSender<'WEBHOOK'> {
  const signer = new Webhook(options.secret);
  const timeoutMs = options.requestTimeoutMs ?? 10_000;
  const logger = options.logger ?? console;
  const poster = createHttpPoster(options.networkPolicy ?? createNetworkPolicy());
  return {
    kind: 'WEBHOOK',
    async send(message, device) {
      const { options: pushOptions } = message.notification;
      // the per-notification options travel in the body, for the relay to pass on
      const body = JSON.stringify({ ...pushPayload(message), ...pushOptions });
      const id = webhookId(message, device);
      const now = new Date();
      const headers = {
        'content-type': 'application/json',
        'user-agent': 'Herald-Push',
        'webhook-id': id,
        'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
        'webhook-signature': signer.sign(id, now, body),
      };
      if (options.dryRun) {
        logger.info(`push dry-run: would POST webhook ${id} (${body.length} bytes) to device ${device.id} of ${message.user}`);
        return { outcome: 'sent', dryRun: true };
      }
      try {
        const result = await poster.post(device.url, headers, body, timeoutMs);
        if (result.status >= 200 && result.status < 300) return { outcome: 'sent', dryRun: false };
        if (result.status === 410) return { outcome: 'gone', reason: 'webhook answered 410 Gone' };
        return retryAnswer(result, `webhook answered ${result.status}`);
      } catch (error) {
        return networkOutcome(error, 'webhook');
      }
    },
    close: async () => poster.close(),
  };
}
