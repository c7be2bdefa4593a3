/**
 * What a device is, whatever its kind: the kinds, a device's address per kind, and the
 * error a bad one is. The kinds' own rules (their fields, their identity, their target,
 * their sender) are rows of the registry in ./device-kinds.ts; this module stays a leaf
 * so the senders can name devices without importing the registry that makes them.
 */
import { Failure } from '../common/failures.js';

export type DeviceKind = 'FCM' | 'WEB_PUSH' | 'WEBHOOK' | 'APNS';

export const DEVICE_KINDS: readonly DeviceKind[] = ['FCM', 'WEB_PUSH', 'WEBHOOK', 'APNS'];

/** A browser's `PushSubscription.toJSON()`, minus `expirationTime`. */
export interface WebPushSubscription {
  readonly endpoint: string;
  readonly keys: { readonly p256dh: string; readonly auth: string };
}

/** Where a push goes: what a client registers. */
export type DeviceAddress =
  | { readonly kind: 'FCM'; readonly token: string }
  | { readonly kind: 'WEB_PUSH'; readonly subscription: WebPushSubscription }
  | { readonly kind: 'WEBHOOK'; readonly url: string }
  /** An APNs device token, hex in lower case. */
  | { readonly kind: 'APNS'; readonly token: string };

/** The address of a device of kind `K`. */
export type AddressOf<K extends DeviceKind> = Extract<DeviceAddress, { readonly kind: K }>;

/** A registered device. */
export type Device = DeviceAddress & {
  readonly id: string;
  /** When it was (last) registered, ms since the epoch. */
  readonly registeredAt: number;
};

/** A device a client sent is not acceptable (`BAD_USER_INPUT`); `field` names the offending field. */
export class InvalidDeviceError extends Failure {
  override readonly name = 'InvalidDeviceError';
  constructor(
    readonly field: string,
    problem: string,
  ) {
    super('BAD_USER_INPUT', `${field} ${problem}`);
  }
}
