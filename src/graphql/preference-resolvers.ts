/**
 * Preferences over GraphQL: the `preferences` query, `setPreference`, `setQuietHours`
 * and `clearQuietHours` (subscribe server, a user's own, or a service's for a user of its
 * tenant), and `setDefaultPreference` (publish server, a service's). A user's change is
 * told on the user's own channel, so every open subscription of theirs, on any device,
 * applies it at once (`Observer.preferencesChanged`).
 */
import { authorizePublish, ForbiddenError, PUBLISH_SCOPE, type Principal } from '../auth/index.js';
import type { Broker } from '../broker/types.js';
import { Failure } from '../common/failures.js';
import { assertValidName, type Namer } from '../names/index.js';
import { CHANNELS } from '../preferences/channels.js';
import { encodePreferencesChange, isEnabled, type CategorySettings, type UserPreferences } from '../preferences/preferences.js';
import { parseQuietHours, type QuietHours } from '../preferences/quiet-hours.js';
import type { PreferenceStore } from '../preferences/store.js';
import { requirePrincipal, type HeraldContext } from './schema.js';

/** `Preferences.categories`: every category with a choice or a default, sorted, each with every channel. */
function categoryPreferences(user: CategorySettings, defaults: CategorySettings) {
  const names = [...new Set([...user.keys(), ...defaults.keys()])].sort();
  return names.map((category) => ({
    category,
    channels: CHANNELS.map((channel) => ({
      channel,
      enabled: isEnabled(user, defaults, category, channel),
      chosen: user.get(category)?.[channel] !== undefined,
    })),
  }));
}

function toGraphQL(preferences: UserPreferences, defaults: CategorySettings) {
  return { categories: categoryPreferences(preferences.categories, defaults), quietHours: preferences.quietHours ?? null };
}

/** The user a principal acts for: its own, or with the publish scope `userName` of its tenant. */
function subjectOf(principal: Principal, userName: unknown): string {
  if (userName == null) return principal.name;
  const user = assertValidName('userName', userName);
  if (user !== principal.name && !principal.scopes.has(PUBLISH_SCOPE)) {
    throw new ForbiddenError(`you may only change your own preferences ("${principal.name}"); another user's needs the "${PUBLISH_SCOPE}" scope`);
  }
  return user;
}

export interface PreferenceResolverOptions {
  /** The store; undefined where the fields are answered by the other server. */
  readonly store: PreferenceStore | undefined;
  /** Thrown by the user's fields without a store (`WRONG_SERVER` on the publish server). */
  readonly absent: Failure;
  /** Tells a user's open subscriptions their preferences changed. */
  readonly broker: Broker;
  readonly namer: Namer;
}

export function createPreferenceResolvers({ store, absent, broker, namer }: PreferenceResolverOptions) {
  const withStore = (): PreferenceStore => {
    if (store === undefined) throw absent;
    return store;
  };
  /** Tells the user's devices, then answers with the preferences as they now apply. */
  const changed = async (tenant: string, user: string, preferences: UserPreferences) => {
    const channel = namer.destination(tenant, 'USER', user).channel;
    try {
      await broker.signal(channel, String(preferences.version), encodePreferencesChange(preferences));
    } catch (error) {
      throw new Failure('OUTCOME_UNKNOWN', 'the preference was saved, but open subscriptions may not have heard of it: set it again', { cause: error });
    }
    return toGraphQL(preferences, await withStore().defaults(tenant));
  };
  return {
    Query: {
      async preferences(_root: unknown, args: { userName?: string | null }, context: HeraldContext) {
        const principal = requirePrincipal(context);
        const user = subjectOf(principal, args.userName);
        const { preferences, defaults } = await withStore().readWithDefaults(principal.tenant, user);
        return toGraphQL(preferences, defaults);
      },
    },
    Mutation: {
      async setPreference(_root: unknown, args: { category: unknown; channel: unknown; enabled: unknown; userName?: string | null }, context: HeraldContext) {
        const principal = requirePrincipal(context);
        const user = subjectOf(principal, args.userName);
        const preferences = await withStore().set(principal.tenant, user, args.category, args.channel, args.enabled);
        return changed(principal.tenant, user, preferences);
      },
      async setQuietHours(_root: unknown, args: { start: unknown; end: unknown; timeZone: unknown; userName?: string | null }, context: HeraldContext) {
        const principal = requirePrincipal(context);
        const user = subjectOf(principal, args.userName);
        const quietHours: QuietHours = parseQuietHours(args);
        return changed(principal.tenant, user, await withStore().setQuietHours(principal.tenant, user, quietHours));
      },
      async clearQuietHours(_root: unknown, args: { userName?: string | null }, context: HeraldContext) {
        const principal = requirePrincipal(context);
        const user = subjectOf(principal, args.userName);
        return changed(principal.tenant, user, await withStore().setQuietHours(principal.tenant, user, undefined));
      },
    },
  };
}

/** `setDefaultPreference`, the publish server's: a service sets its tenant's defaults. */
export function createDefaultPreferenceResolvers(store: PreferenceStore) {
  return {
    Mutation: {
      async setDefaultPreference(_root: unknown, args: { category: unknown; channel: unknown; enabled: unknown }, context: HeraldContext) {
        const principal = requirePrincipal(context);
        authorizePublish(principal);
        const defaults = await store.setDefault(principal.tenant, args.category, args.channel, args.enabled);
        return categoryPreferences(new Map(), defaults);
      },
    },
  };
}
