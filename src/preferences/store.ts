/**
 * The preference store's interface, its checks and its in-memory version (the
 * in-process broker's: no Redis). The Redis version is `redis-store.ts`.
 */
import { Failure, InvalidInputError } from '../common/failures.js';
import { assertValidName } from '../names/index.js';
import { CHANNELS, isChannel, type Channel } from './channels.js';
import { NO_DEFAULTS, NO_PREFERENCES, type CategorySettings, type ChannelSettings, type UserPreferences } from './preferences.js';
import type { QuietHours } from './quiet-hours.js';

/** The user already has choices for the most categories allowed (`LIMIT_EXCEEDED`). */
export class PreferenceLimitError extends Failure {
  override readonly name = 'PreferenceLimitError';
  constructor(readonly limit: number) {
    super('LIMIT_EXCEEDED', `a user may set preferences for at most ${limit} categories (PREFERENCES_MAX_CATEGORIES_PER_USER)`);
  }
}

/** Most categories a tenant's service may set defaults for. */
export const MAX_DEFAULT_CATEGORIES = 1000;

export interface PreferenceStore {
  /** `user`'s preferences ({@link NO_PREFERENCES} when none were set). */
  read(tenant: string, user: string): Promise<UserPreferences>;
  /** `user`'s preferences and the tenant's defaults, in one round trip: what a subscription or a push needs. */
  readWithDefaults(tenant: string, user: string): Promise<{ preferences: UserPreferences; defaults: CategorySettings }>;
  /**
   * Several users' preferences and the tenant's defaults in one round trip: the push
   * worker's read for a page of a topic's followers. A user with none maps to
   * {@link NO_PREFERENCES}.
   */
  readManyWithDefaults(tenant: string, users: readonly string[]): Promise<{ preferences: ReadonlyMap<string, UserPreferences>; defaults: CategorySettings }>;
  /**
   * Turns `category` on or off for `channel` for `user`; returns the preferences after
   * it. Throws `BAD_USER_INPUT` naming a bad argument, {@link PreferenceLimitError}.
   */
  set(tenant: string, user: string, category: unknown, channel: unknown, enabled: unknown): Promise<UserPreferences>;
  /** Sets (or with undefined removes) `user`'s quiet hours, already checked (`parseQuietHours`). */
  setQuietHours(tenant: string, user: string, quietHours: QuietHours | undefined): Promise<UserPreferences>;
  /** The tenant's defaults. */
  defaults(tenant: string): Promise<CategorySettings>;
  /** Sets the tenant's default for `category` on `channel`; returns the defaults after it. */
  setDefault(tenant: string, category: unknown, channel: unknown, enabled: unknown): Promise<CategorySettings>;
}

/** A checked `set`: each argument, or `BAD_USER_INPUT` naming the first bad one. */
export function checkSetting(category: unknown, channel: unknown, enabled: unknown): { category: string; channel: Channel; enabled: boolean } {
  const name = assertValidName('category', category);
  if (!isChannel(channel)) throw new InvalidInputError(`channel must be one of ${CHANNELS.join(', ')}`);
  if (typeof enabled !== 'boolean') throw new InvalidInputError('enabled must be a boolean');
  return { category: name, channel, enabled };
}

export interface MemoryPreferenceStoreOptions {
  /** Most categories one user may hold choices for. @default 100 */
  maxCategoriesPerUser?: number;
}

/** The in-process store: everything in this process's memory, gone when it stops. */
export function createMemoryPreferenceStore(options: MemoryPreferenceStoreOptions = {}): PreferenceStore {
  const limit = options.maxCategoriesPerUser ?? 100;
  const users = new Map<string, UserPreferences>();
  const defaults = new Map<string, Map<string, ChannelSettings>>();
  const keyOf = (tenant: string, user: string): string => `${assertValidName('tenant', tenant)}\0${assertValidName('user name', user)}`;
  const read = (tenant: string, user: string): UserPreferences => users.get(keyOf(tenant, user)) ?? NO_PREFERENCES;
  const update = (tenant: string, user: string, change: (current: UserPreferences) => Omit<UserPreferences, 'version'>): UserPreferences => {
    const current = read(tenant, user);
    const next = { ...change(current), version: current.version + 1 };
    users.set(keyOf(tenant, user), next);
    return next;
  };
  return {
    read: async (tenant, user) => read(tenant, user),
    readWithDefaults: async (tenant, user) => ({ preferences: read(tenant, user), defaults: defaults.get(tenant) ?? NO_DEFAULTS }),
    readManyWithDefaults: async (tenant, names) => ({
      preferences: new Map(names.map((user) => [user, read(tenant, user)])),
      defaults: defaults.get(tenant) ?? NO_DEFAULTS,
    }),
    async set(tenant, user, ...setting) {
      const { category, channel, enabled } = checkSetting(...setting);
      return update(tenant, user, (current) => {
        if (!current.categories.has(category) && current.categories.size >= limit) throw new PreferenceLimitError(limit);
        const categories = new Map(current.categories);
        categories.set(category, { ...current.categories.get(category), [channel]: enabled });
        return { categories, quietHours: current.quietHours };
      });
    },
    setQuietHours: async (tenant, user, quietHours) => update(tenant, user, (current) => ({ categories: current.categories, quietHours })),
    defaults: async (tenant) => defaults.get(assertValidName('tenant', tenant)) ?? NO_DEFAULTS,
    async setDefault(tenant, ...setting) {
      const { category, channel, enabled } = checkSetting(...setting);
      const tenantDefaults = defaults.get(assertValidName('tenant', tenant)) ?? new Map<string, ChannelSettings>();
      if (!tenantDefaults.has(category) && tenantDefaults.size >= MAX_DEFAULT_CATEGORIES) {
        throw new Failure('LIMIT_EXCEEDED', `a tenant may set defaults for at most ${MAX_DEFAULT_CATEGORIES} categories`);
      }
      tenantDefaults.set(category, { ...tenantDefaults.get(category), [channel]: enabled });
      defaults.set(tenant, tenantDefaults);
      return tenantDefaults;
    },
  };
}
