/**
 * A user's push settings over GraphQL: `registerDevice`, `removeDevice` and the
 * `devices` query, `follow`, `unfollow` and `following` — the GraphQL face of the push
 * module's device and topic stores. The stores' errors are failures of their kind already
 * (a bad field `BAD_USER_INPUT` naming it, a limit `LIMIT_EXCEEDED` naming its variable),
 * so the error mask gives each its code.
 */
import { authorizeDeviceOwner } from '../auth/index.js';
import type { Failure } from '../common/failures.js';
import { requirePrincipal, type HeraldContext } from './schema.js';
import { assertValidName } from '../names/index.js';
import { shownOf } from '../push/device-kinds.js';
import type { Device, DeviceStore } from '../push/devices.js';
import type { TopicStore } from '../push/topics.js';

export interface PushStores {
  readonly devices: DeviceStore;
  readonly topics: TopicStore;
}

export interface PushResolverOptions {
  /** The stores, on Redis; none in the in-process mode or on the publish server. */
  readonly stores: PushStores | undefined;
  /** Why there are none: thrown by every field when `stores` is undefined. */
  readonly absent: Failure;
}

/** A device as `type Device` shows it: its kind's one address field (the Web Push keys stay private), the others null. */
function toGraphQL(device: Device) {
  const shown = shownOf(device);
  return {
    id: device.id,
    kind: device.kind,
    registeredAt: Math.floor(device.registeredAt / 1000),
    token: null,
    endpoint: null,
    url: null,
    [shown.field]: shown.value,
  };
}

export function createPushResolvers({ stores, absent }: PushResolverOptions) {
  /** Runs `work` with the stores; throws `absent` without them. */
  const withStores = async <T>(work: (stores: PushStores) => Promise<T>): Promise<T> => {
    if (stores === undefined) throw absent;
    return work(stores);
  };
  /** The principal and the user it acts for (`userName` needs the publish scope). */
  const owner = (context: HeraldContext, userName: string | null | undefined) => {
    const principal = requirePrincipal(context);
    const user = authorizeDeviceOwner(principal, userName == null ? undefined : assertValidName('userName', userName));
    return { tenant: principal.tenant, user };
  };
  return {
    Query: {
      devices: (_root: unknown, args: { userName?: string | null }, context: HeraldContext) => {
        const { tenant, user } = owner(context, args.userName);
        return withStores(async ({ devices }) => (await devices.list(tenant, user)).map(toGraphQL));
      },
      following: (_root: unknown, _args: unknown, context: HeraldContext) => {
        const principal = requirePrincipal(context);
        return withStores(({ topics }) => topics.following(principal.tenant, principal.name));
      },
    },
    Mutation: {
      registerDevice: (_root: unknown, args: { device: unknown; userName?: string | null }, context: HeraldContext) => {
        const { tenant, user } = owner(context, args.userName);
        return withStores(async ({ devices }) => toGraphQL(await devices.register(tenant, user, args.device)));
      },
      removeDevice: (_root: unknown, args: { id: string; userName?: string | null }, context: HeraldContext) => {
        const { tenant, user } = owner(context, args.userName);
        return withStores(({ devices }) => devices.remove(tenant, user, args.id));
      },
      follow: (_root: unknown, args: { topic: string }, context: HeraldContext) => {
        const principal = requirePrincipal(context);
        return withStores(async ({ topics }) => {
          await topics.follow(principal.tenant, principal.name, args.topic);
          return true;
        });
      },
      unfollow: (_root: unknown, args: { topic: string }, context: HeraldContext) => {
        const principal = requirePrincipal(context);
        return withStores(({ topics }) => topics.unfollow(principal.tenant, principal.name, args.topic));
      },
    },
  };
}
