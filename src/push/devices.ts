/**
 * A user's push devices: FCM registration tokens, Web Push subscriptions and webhook
 * URLs, kept in one Redis hash per user inside the tenant (device id → device JSON).
 *
 * A device's id is a hash of its kind and address, so registering the same phone twice
 * updates one entry instead of using up the per-user limit. Everything a client sends is
 * `unknown` until {@link parseDeviceInput} has checked it; its errors name the field.
 */
import { createHash, ECDH } from 'node:crypto';
import type { Redis } from 'ioredis';
import { Failure } from '../common/failures.js';
import type { PushKeys } from './keys.js';
import { createNetworkPolicy, type NetworkPolicy } from './network-policy.js';

export type DeviceKind = 'FCM' | 'WEB_PUSH' | 'WEBHOOK';

export const DEVICE_KINDS: readonly DeviceKind[] = ['FCM', 'WEB_PUSH', 'WEBHOOK'];

/** A browser's `PushSubscription.toJSON()`, minus `expirationTime`. */
export interface WebPushSubscription {
  readonly endpoint: string;
  readonly keys: { readonly p256dh: string; readonly auth: string };
}

/** Where a push goes: what a client registers. */
export type DeviceAddress =
  | { readonly kind: 'FCM'; readonly token: string }
  | { readonly kind: 'WEB_PUSH'; readonly subscription: WebPushSubscription }
  | { readonly kind: 'WEBHOOK'; readonly url: string };

/** A registered device. */
export type Device = DeviceAddress & {
  readonly id: string;
  /** When it was (last) registered, ms since the epoch. */
  readonly registeredAt: number;
};

/** Longest URL (webhook or Web Push endpoint) accepted. */
const MAX_URL_LENGTH = 2048;
/** FCM tokens are about 160 characters today; room for growth, not for abuse. */
const MAX_FCM_TOKEN_LENGTH = 4096;
const FCM_TOKEN_PATTERN = /^[A-Za-z0-9_:.-]+$/;
const BASE64URL_PATTERN = /^[A-Za-z0-9_-]+={0,2}$/;

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

/** The user already has the most devices allowed (`LIMIT_EXCEEDED`). */
export class DeviceLimitError extends Failure {
  override readonly name = 'DeviceLimitError';
  constructor(readonly limit: number) {
    super('LIMIT_EXCEEDED', `a user may register at most ${limit} devices: remove one first (PUSH_MAX_DEVICES_PER_USER)`);
  }
}

export interface ParseDeviceOptions {
  /**
   * Accept `http://` webhook URLs and Web Push endpoints (development and tests);
   * otherwise only `https://`.
   * @default false
   */
  allowInsecureUrls?: boolean;
}

/**
 * Checks a client's `DeviceInput` (`{ kind, token }`, `{ kind, subscription }` or
 * `{ kind, url }`); throws {@link InvalidDeviceError} naming the first bad field.
 */
export function parseDeviceInput(input: unknown, options: ParseDeviceOptions = {}): DeviceAddress {
  const insecure = options.allowInsecureUrls ?? false;
  const device = record('device', input);
  const kind = device['kind'];
  if (typeof kind !== 'string' || !DEVICE_KINDS.includes(kind as DeviceKind)) {
    throw new InvalidDeviceError('device.kind', `must be one of ${DEVICE_KINDS.join(', ')}`);
  }
  const fields: Record<DeviceKind, string> = { FCM: 'token', WEB_PUSH: 'subscription', WEBHOOK: 'url' };
  for (const [other, field] of Object.entries(fields)) {
    if (other !== kind && device[field] !== undefined && device[field] !== null) {
      throw new InvalidDeviceError(`device.${field}`, `is not a field of a ${kind} device`);
    }
  }
  switch (kind as DeviceKind) {
    case 'FCM': {
      const token = device['token'];
      if (typeof token !== 'string' || token.length === 0) throw new InvalidDeviceError('device.token', 'must be a non-empty string');
      if (token.length > MAX_FCM_TOKEN_LENGTH) throw new InvalidDeviceError('device.token', `is longer than ${MAX_FCM_TOKEN_LENGTH} characters`);
      if (!FCM_TOKEN_PATTERN.test(token)) throw new InvalidDeviceError('device.token', 'is not an FCM registration token');
      return { kind: 'FCM', token };
    }
    case 'WEB_PUSH': {
      const subscription = record('device.subscription', device['subscription']);
      const endpoint = parseUrl('device.subscription.endpoint', subscription['endpoint'], insecure);
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
    }
    case 'WEBHOOK':
      return { kind: 'WEBHOOK', url: parseUrl('device.url', device['url'], insecure) };
  }
}

/** The stable id of a device: the same address always gets the same id. */
export function deviceId(address: DeviceAddress): string {
  const identity =
    address.kind === 'FCM' ? address.token : address.kind === 'WEB_PUSH' ? address.subscription.endpoint : address.url;
  return createHash('sha256').update(`${address.kind}\0${identity}`).digest('base64url').slice(0, 22);
}

/** Parses a stored device; undefined if the stored value is not one (it is then ignored). */
export function decodeDevice(id: string, raw: string): Device | undefined {
  try {
    const value: unknown = JSON.parse(raw);
    const address = parseDeviceInput(value, { allowInsecureUrls: true });
    const registeredAt = (value as Record<string, unknown>)['registeredAt'];
    return { ...address, id, registeredAt: typeof registeredAt === 'number' ? registeredAt : 0 };
  } catch {
    return undefined;
  }
}

export interface DeviceStoreOptions {
  /** A connection for commands (not one in subscriber or blocking mode). */
  redis: Redis;
  keys: PushKeys;
  /**
   * Most devices one user may hold (`PUSH_MAX_DEVICES_PER_USER`); one more is a
   * {@link DeviceLimitError}. Re-registering a device already held does not count.
   * @default 10
   */
  maxDevicesPerUser?: number;
  /** Accept `http://` URLs (development and tests). @default false */
  allowInsecureUrls?: boolean;
  /**
   * Which addresses a webhook URL or Web Push endpoint may be at (`PUSH_ALLOWED_NETWORKS`):
   * one whose host is a refused literal, a `localhost` name, or a name resolving to a
   * refused address is an {@link InvalidDeviceError} naming the address and its range.
   * @default public addresses only
   */
  networkPolicy?: NetworkPolicy;
  /**
   * How long registration waits for a URL's name to resolve. A name that does not
   * resolve in time is accepted: the worker checks every address it connects to anyway.
   * @default 2000 (ms)
   */
  resolveTimeoutMs?: number;
}

export interface DeviceStore {
  /**
   * Validates `input` and stores it for `user`; returns the device with its id. Throws
   * {@link InvalidDeviceError} or {@link DeviceLimitError}.
   */
  register(tenant: string, user: string, input: unknown): Promise<Device>;
  /** Removes one of `user`'s devices; false if it had none with that id. */
  remove(tenant: string, user: string, id: string): Promise<boolean>;
  /** `user`'s devices, oldest registration first (at most the per-user limit). */
  list(tenant: string, user: string): Promise<Device[]>;
}

/**
 * KEYS: the user's device hash. ARGV: device id, device JSON, limit.
 * Returns 1 when stored, 0 when the user is at the limit. One script, so two concurrent
 * registrations cannot both pass the count.
 */
const REGISTER_SCRIPT = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
`;

type RegisterCommand = (key: string, id: string, json: string, limit: number) => Promise<number>;

export function createDeviceStore(options: DeviceStoreOptions): DeviceStore {
  const { redis, keys } = options;
  const limit = options.maxDevicesPerUser ?? 10;
  const allowInsecureUrls = options.allowInsecureUrls ?? false;
  const policy = options.networkPolicy ?? createNetworkPolicy();
  const resolveTimeoutMs = options.resolveTimeoutMs ?? 2000;
  /** Refuses a URL the worker would refuse to connect to, as far as it can tell now. */
  const assertAllowedTarget = async (address: DeviceAddress): Promise<void> => {
    if (address.kind === 'FCM') return;
    const [field, url] = address.kind === 'WEBHOOK' ? ['device.url', address.url] : ['device.subscription.endpoint', address.subscription.endpoint];
    const refusal = await policy.resolveRefusal(new URL(url).hostname, resolveTimeoutMs);
    if (refusal !== undefined) {
      // the worker would POST wherever a user points it: not at the network it runs in
      throw new InvalidDeviceError(field, `must not point at a loopback, private, link-local or other internal address: ${refusal} (PUSH_ALLOWED_NETWORKS lists exceptions)`);
    }
  };
  if (!('heraldRegisterDevice' in redis)) {
    redis.defineCommand('heraldRegisterDevice', { numberOfKeys: 1, lua: REGISTER_SCRIPT });
  }
  const registerCommand = (redis as unknown as { heraldRegisterDevice: RegisterCommand }).heraldRegisterDevice.bind(redis);
  return {
    async register(tenant, user, input) {
      const address = parseDeviceInput(input, { allowInsecureUrls });
      await assertAllowedTarget(address);
      const device: Device = { ...address, id: deviceId(address), registeredAt: Date.now() };
      const { id, ...stored } = device;
      const ok = await registerCommand(keys.devices(tenant, user), id, JSON.stringify(stored), limit);
      if (ok !== 1) throw new DeviceLimitError(limit);
      return device;
    },
    async remove(tenant, user, id) {
      return (await redis.hdel(keys.devices(tenant, user), id)) > 0;
    },
    async list(tenant, user) {
      const stored = await redis.hgetall(keys.devices(tenant, user));
      return Object.entries(stored)
        .map(([id, raw]) => decodeDevice(id, raw))
        .filter((device): device is Device => device !== undefined)
        .sort((a, b) => a.registeredAt - b.registeredAt);
    },
  };
}

function record(field: string, value: unknown): Record<string, unknown> {
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
