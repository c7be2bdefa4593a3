/**
 * The sender of a kind that has no configuration, outside production: logs what it
 * would send, sends nothing. (In production such a kind has no sender at all, and the
 * worker counts its devices as `skippedUnconfigured`.)
 */
import type { Logger } from '../../common/logger.js';
import type { DeviceKind } from '../device-address.js';
import type { DeviceSender } from './types.js';

export function createDryRunSender<K extends DeviceKind>(kind: K, logger: Logger = console): DeviceSender<K> {
  return {
    kind,
    async send(message, device) {
      logger.info(`push dry-run: would send ${kind} push for ${message.notification.id} to device ${device.id} of ${message.user} (${kind} not configured)`);
      return { outcome: 'sent', dryRun: true };
    },
    close: async () => undefined,
  };
}
