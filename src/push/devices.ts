/**
 * A user's push devices: FCM registration tokens, Web Push subscriptions and webhook
 * URLs, kept in one Redis hash per user inside the tenant (device id → device JSON).
 *
 * A device's id is a hash of its kind and address, so registering the same phone twice
 * updates one entry instead of using up the per-user limit. Everything a client sends is
 * `unknown` until {@link parseDeviceInput} has checked it; its errors name the field.
 */
import { createHash } from 'node:crypto';
import { Failure } from '../common/failures.js';
import type { RedisClient } from '../redis/connect.js';
import { DEVICE_KINDS, InvalidDeviceError, type Device, type DeviceAddress, type DeviceKind } from './device-address.js';
import { DEVICE_KIND_SPECS, identityOf, record, targetOf } from './device-kinds.js';
import type { PushKeys } from './keys.js';
import { createNetworkPolicy, type NetworkPolicy } from './network-policy.js';

export { DEVICE_KINDS, InvalidDeviceError, type Device, type DeviceAddress, type DeviceKind } from './device-address.js';

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
  const device = record('device', input);
  const kind = device['kind'];
  if (typeof kind !== 'string' || !DEVICE_KINDS.includes(kind as DeviceKind)) {
    throw new InvalidDeviceError('device.kind', `must be one of ${DEVICE_KINDS.join(', ')}`);
  }
  const spec = DEVICE_KIND_SPECS[kind as DeviceKind];
  for (const other of DEVICE_KINDS) {
    const { field } = DEVICE_KIND_SPECS[other];
    if (field !== spec.field && device[field] !== undefined && device[field] !== null) {
      throw new InvalidDeviceError(`device.${field}`, `is not a field of a ${kind} device`);
    }
  }
  return spec.parse(device[spec.field], { allowInsecureUrls: options.allowInsecureUrls ?? false });
}

/** The stable id of a device: the same address always gets the same id. */
export function deviceId(address: DeviceAddress): string {
  return createHash('sha256').update(`${address.kind}\0${identityOf(address)}`).digest('base64url').slice(0, 22);
}

/** Parses a stored device; undefined if the stored value is not one (it is then ignored). */
function decodeDevice(id: string, raw: string): Device | undefined {
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
  redis: RedisClient;
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
    const target = targetOf(address);
    if (target === undefined) return;
    const { field, url } = target;
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
