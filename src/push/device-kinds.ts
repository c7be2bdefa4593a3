/**
 * The device kinds, one row each, the way the failure and audience tables work: the
 * field a client's `DeviceInput` holds its address in and how that is checked, what
 * makes two registrations one device, where a push to it connects, what the `Device`
 * type shows of it, and its sender, made from its part of the push settings. Adding a
 * kind is a row here, its sender module, its address in ./device-address.ts, its
 * settings, and its fields in schema.graphql.
 */
import { ECDH } from 'node:crypto';
import type { Logger } from '../common/logger.js';
import type { PushConfig } from '../config/index.js';
import { InvalidDeviceError, type AddressOf, type DeviceAddress, type DeviceKind } from './device-address.js';
import type { NetworkPolicy } from './network-policy.js';
import { createApnsSender } from './senders/apns.js';
import { createFcmSender } from './senders/fcm.js';
import type { DeviceSender } from './senders/types.js';
import { createWebPushSender } from './senders/web-push.js';
import { createWebhookSender } from './senders/webhook.js';

/** Longest URL (webhook or Web Push endpoint) accepted. */
const MAX_URL_LENGTH = 2048;
/** FCM tokens are about 160 characters today; room for growth, not for abuse. */
const MAX_FCM_TOKEN_LENGTH = 4096;
const FCM_TOKEN_PATTERN = /^[A-Za-z0-9_:.-]+$/;
const BASE64URL_PATTERN = /^[A-Za-z0-9_-]+={0,2}$/;
/**
 * An APNs device token in hex: 32 bytes today, but Apple says their length may change, so
 * 16 to 100 bytes (APNs itself refuses longer ones).
 */
const APNS_TOKEN_PATTERN = /^(?:[0-9A-Fa-f]{2}){16,100}$/;

/** How a kind's address is checked. */
export interface AddressRules {
  /** Accept `http://` URLs (development and tests); otherwise only `https://`. */
  readonly allowInsecureUrls: boolean;
}

/** What every sender is made with, beside its kind's own settings. */
export interface SenderContext {
  readonly dryRun: boolean;
  /** `PUSH_SEND_TIMEOUT_MS`. */
  readonly requestTimeoutMs: number;
  readonly logger: Logger;
  /** `PUSH_ALLOWED_NETWORKS`. */
  readonly networkPolicy: NetworkPolicy;
}

export interface DeviceKindSpec<K extends DeviceKind> {
  /** The `DeviceInput` field that holds the address. */
  readonly field: string;
  /** Checks that field's value; throws {@link InvalidDeviceError} naming the bad field. */
  parse(value: unknown, rules: AddressRules): AddressOf<K>;
  /** What makes two registrations the same device (hashed into its id). */
  identity(address: AddressOf<K>): string;
  /**
   * The URL a push to it connects to, and the input field it came from: checked against
   * `PUSH_ALLOWED_NETWORKS` at registration, and its origin is the destination the
   * per-destination limit and circuit breaker count. Undefined when it is the push
   * service the operator configured (FCM, APNs), shared by every tenant.
   */
  target(address: AddressOf<K>): { readonly field: string; readonly url: string } | undefined;
  /** The `Device` field that shows it, and what it shows (keys stay private). */
  readonly shown: { readonly field: 'token' | 'endpoint' | 'url'; value(address: AddressOf<K>): string };
  /** Its sender, from its part of the push settings; undefined when they do not configure it. */
  createSender(push: PushConfig, context: SenderContext): DeviceSender<K> | undefined;
}

export const DEVICE_KIND_SPECS: { readonly [K in DeviceKind]: DeviceKindSpec<K> } = {
  FCM: {
    field: 'token',
    parse(token) {
      if (typeof token !== 'string' || token.length === 0) throw new InvalidDeviceError('device.token', 'must be a non-empty string');
      if (token.length > MAX_FCM_TOKEN_LENGTH) throw new InvalidDeviceError('device.token', `is longer than ${MAX_FCM_TOKEN_LENGTH} characters`);
      if (!FCM_TOKEN_PATTERN.test(token)) throw new InvalidDeviceError('device.token', 'is not an FCM registration token');
      return { kind: 'FCM', token };
    },
    identity: (address) => address.token,
    target: () => undefined,
    shown: { field: 'token', value: (address) => address.token },
    createSender: ({ fcm }, context) =>
      fcm && createFcmSender({ serviceAccount: fcm.serviceAccount, baseUrl: fcm.url, tokenUrl: fcm.tokenUrl, ...context }),
  },
  WEB_PUSH: {
    field: 'subscription',
    parse(value, { allowInsecureUrls }) {
      const subscription = record('device.subscription', value);
      const endpoint = parseUrl('device.subscription.endpoint', subscription['endpoint'], allowInsecureUrls);
      const keys = record('device.subscription.keys', subscription['keys']);
      const p256dh = base64url('device.subscription.keys.p256dh', keys['p256dh']);
      const p256dhBytes = Buffer.from(p256dh, 'base64url');
      if (p256dhBytes.length !== 65 || p256dhBytes[0] !== 0x04) {
        throw new InvalidDeviceError('device.subscription.keys.p256dh', 'must be an uncompressed P-256 public key (65 bytes)');
      }
      if (!isP256Point(p256dhBytes)) {
        // the payload is encrypted to this key at send time (RFC 8291): catch it here, not then
        throw new InvalidDeviceError('device.subscription.keys.p256dh', 'is not a point on the P-256 curve');
      }
      const auth = base64url('device.subscription.keys.auth', keys['auth']);
      if (Buffer.from(auth, 'base64url').length !== 16) {
        throw new InvalidDeviceError('device.subscription.keys.auth', 'must be 16 bytes');
      }
      return { kind: 'WEB_PUSH', subscription: { endpoint, keys: { p256dh, auth } } };
    },
    identity: (address) => address.subscription.endpoint,
    target: (address) => ({ field: 'device.subscription.endpoint', url: address.subscription.endpoint }),
    shown: { field: 'endpoint', value: (address) => address.subscription.endpoint },
    createSender: ({ vapid }, context) => vapid && createWebPushSender({ vapid, ...context }),
  },
  WEBHOOK: {
    field: 'url',
    parse: (value, { allowInsecureUrls }) => ({ kind: 'WEBHOOK', url: parseUrl('device.url', value, allowInsecureUrls) }),
    identity: (address) => address.url,
    target: (address) => ({ field: 'device.url', url: address.url }),
    shown: { field: 'url', value: (address) => address.url },
    createSender: ({ webhookSecret }, context) => (webhookSecret === undefined ? undefined : createWebhookSender({ secret: webhookSecret, ...context })),
  },
  APNS: {
    field: 'token',
    parse(token) {
      if (typeof token !== 'string' || token.length === 0) throw new InvalidDeviceError('device.token', 'must be a non-empty string');
      if (!APNS_TOKEN_PATTERN.test(token)) throw new InvalidDeviceError('device.token', 'is not an APNs device token (hex, 16 to 100 bytes)');
      // the same token in either case is one device
      return { kind: 'APNS', token: token.toLowerCase() };
    },
    identity: (address) => address.token,
    // the operator's APNs host, shared by every tenant, like FCM's
    target: () => undefined,
    shown: { field: 'token', value: (address) => address.token },
    createSender: ({ apns }, context) => apns && createApnsSender({ credentials: apns.credentials, baseUrl: apns.url, ...context }),
  },
};

/**
 * The spec of `address`'s kind, typed for it. The table is keyed by kind, so a spec only
 * ever gets addresses of its own kind; TypeScript cannot follow that through a union.
 */
function specOf(address: DeviceAddress): DeviceKindSpec<DeviceKind> {
  return DEVICE_KIND_SPECS[address.kind] as DeviceKindSpec<DeviceKind>;
}

/** What makes `address` one device. */
export function identityOf(address: DeviceAddress): string {
  return specOf(address).identity(address as never);
}

/** Where a push to `address` connects, or undefined for the operator's own push service. */
export function targetOf(address: DeviceAddress): { readonly field: string; readonly url: string } | undefined {
  return specOf(address).target(address as never);
}

/** The `Device` field that shows `address`, and its value. */
export function shownOf(address: DeviceAddress): { readonly field: 'token' | 'endpoint' | 'url'; readonly value: string } {
  const { shown } = specOf(address);
  return { field: shown.field, value: shown.value(address as never) };
}

/** The object at `field`; throws naming it otherwise. */
export function record(field: string, value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidDeviceError(field, 'must be an object');
  }
  return value as Record<string, unknown>;
}

function base64url(field: string, value: unknown): string {
  if (typeof value !== 'string' || !BASE64URL_PATTERN.test(value)) {
    throw new InvalidDeviceError(field, 'must be a base64url string');
  }
  return value.replace(/=+$/, '');
}

/** Whether 65 uncompressed bytes are a point on P-256: OpenSSL refuses to decode one that is not. */
function isP256Point(bytes: Buffer): boolean {
  try {
    ECDH.convertKey(bytes, 'prime256v1');
    return true;
  } catch {
    return false;
  }
}

function parseUrl(field: string, value: unknown, allowInsecure: boolean): string {
  if (typeof value !== 'string' || value.length === 0) throw new InvalidDeviceError(field, 'must be a non-empty string');
  if (value.length > MAX_URL_LENGTH) throw new InvalidDeviceError(field, `is longer than ${MAX_URL_LENGTH} characters`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidDeviceError(field, 'is not a URL');
  }
  if (url.protocol !== 'https:' && !(allowInsecure && url.protocol === 'http:')) {
    throw new InvalidDeviceError(field, allowInsecure ? 'must be an https:// or http:// URL' : 'must be an https:// URL');
  }
  // credentials in a URL would be sent along, and shown wherever the device is listed
  if (url.username !== '' || url.password !== '') throw new InvalidDeviceError(field, 'must not hold a user name or password');
  if (url.hash !== '') throw new InvalidDeviceError(field, 'must not have a #fragment');
  return url.href;
}
