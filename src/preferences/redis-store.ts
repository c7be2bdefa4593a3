/**
 * The preference store on Redis: one hash per user (`v` version, `q` quiet hours,
 * `c:<category>` → `{"FCM":false,…}`) and one per tenant for its defaults, both under
 * the tenant's hash tag (`keys.ts`). Every change is one script, so the per-user bound
 * holds under concurrent changes and the version grows with each.
 */
import { Failure } from '../common/failures.js';
import type { RedisClient } from '../redis/connect.js';
import type { PreferenceKeys } from './keys.js';
import { NO_DEFAULTS, readChannelSettings, readStoredQuietHours, type CategorySettings, type ChannelSettings, type UserPreferences } from './preferences.js';
import { checkSetting, MAX_DEFAULT_CATEGORIES, PreferenceLimitError, type PreferenceStore } from './store.js';

/**
 * KEYS: the hash. ARGV: field, channel, value, limit. A `c:` field gets `channel` set to
 * value '1' or '0' (a new category only under `limit` categories); any other field is
 * set to value, or removed when it is ''. The version `v` then grows by one. Returns
 * the whole hash, or nil when the limit refused it.
 */
const SET_SCRIPT = `
local field = ARGV[1]
if string.sub(field, 1, 2) == 'c:' then
  local raw = redis.call('HGET', KEYS[1], field)
  if not raw then
    local n = redis.call('HLEN', KEYS[1]) - redis.call('HEXISTS', KEYS[1], 'v') - redis.call('HEXISTS', KEYS[1], 'q')
    if n >= tonumber(ARGV[4]) then return false end
  end
  local settings = {}
  if raw then
    local ok, decoded = pcall(cjson.decode, raw)
    if ok and type(decoded) == 'table' then settings = decoded end
  end
  settings[ARGV[2]] = (ARGV[3] == '1')
  redis.call('HSET', KEYS[1], field, cjson.encode(settings))
elseif ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], field)
else
  redis.call('HSET', KEYS[1], field, ARGV[3])
end
redis.call('HINCRBY', KEYS[1], 'v', 1)
return redis.call('HGETALL', KEYS[1])
`;

/**
 * KEYS: a user's hash and the tenant's defaults. Returns each one's HGETALL (field,
 * value, …). One command, not a pipeline of two: every subscription reads them as it
 * opens, and in a burst of openings a pipeline each (several KB, alive until Redis
 * answered) reached V8's old generation by the thousand.
 */
const READ_SCRIPT = `return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2])}`;

type ReadCommand = (userKey: string, defaultsKey: string) => Promise<[string[], string[]]>;

type SetCommand = (key: string, field: string, channel: string, value: string, limit: number) => Promise<string[] | null>;

/**
 * A hash's `c:` fields as category settings; none is the one shared empty map
 * ({@link NO_DEFAULTS}): every open subscription keeps its user's and its tenant's, and
 * most have none.
 */
function categoriesOf(hash: Record<string, string>): CategorySettings {
  let categories: Map<string, ChannelSettings> | undefined;
  for (const [field, raw] of Object.entries(hash)) {
    if (!field.startsWith('c:')) continue;
    try {
      (categories ??= new Map()).set(field.slice(2), readChannelSettings(JSON.parse(raw)));
    } catch {
      // a malformed field is ignored: the category follows the defaults
    }
  }
  return categories ?? NO_DEFAULTS;
}

function preferencesOf(hash: Record<string, string>): UserPreferences {
  const version = Number(hash['v'] ?? 0);
  return { version: Number.isSafeInteger(version) ? version : 0, categories: categoriesOf(hash), quietHours: readStoredQuietHours(hash['q']) };
}

/** HGETALL's flat reply as a record. */
function recordOf(flat: readonly string[]): Record<string, string> {
  const record: Record<string, string> = Object.create(null) as Record<string, string>;
  for (let index = 0; index + 1 < flat.length; index += 2) record[flat[index] as string] = flat[index + 1] as string;
  return record;
}

export interface RedisPreferenceStoreOptions {
  /** A connection for commands (not one in subscriber or blocking mode). */
  redis: RedisClient;
  keys: PreferenceKeys;
  /** Most categories one user may hold choices for (`PREFERENCES_MAX_CATEGORIES_PER_USER`). @default 100 */
  maxCategoriesPerUser?: number;
}

function unavailable(error: unknown): Failure {
  return error instanceof Failure ? error : new Failure('SERVICE_UNAVAILABLE', 'Redis is unavailable: preferences cannot be read or changed', { cause: error });
}

/** `command`'s reply, or its failure as {@link unavailable}. */
function orUnavailable<T>(command: Promise<T>): Promise<T> {
  return command.catch((error: unknown) => {
    throw unavailable(error);
  });
}

export function createRedisPreferenceStore(options: RedisPreferenceStoreOptions): PreferenceStore {
  const { redis, keys } = options;
  const limit = options.maxCategoriesPerUser ?? 100;
  if (!('heraldSetPreference' in redis)) redis.defineCommand('heraldSetPreference', { numberOfKeys: 1, lua: SET_SCRIPT });
  const setCommand = (redis as unknown as { heraldSetPreference: SetCommand }).heraldSetPreference.bind(redis);
  if (!('heraldReadPreferences' in redis)) redis.defineCommand('heraldReadPreferences', { numberOfKeys: 2, lua: READ_SCRIPT });
  const readCommand = (redis as unknown as { heraldReadPreferences: ReadCommand }).heraldReadPreferences.bind(redis);
  const run = async (key: string, field: string, channel: string, value: string, max: number): Promise<Record<string, string> | undefined> => {
    const reply = await orUnavailable(setCommand(key, field, channel, value, max));
    return reply === null ? undefined : recordOf(reply);
  };
  const hgetall = (key: string): Promise<Record<string, string>> => orUnavailable(redis.hgetall(key));
  /** The users' hashes and the defaults' in one pipeline (one slot: the tenant's hash tag). */
  const readMany = async (tenant: string, users: readonly string[]) => {
    const pipeline = redis.pipeline();
    for (const user of users) pipeline.hgetall(keys.user(tenant, user));
    pipeline.hgetall(keys.defaults(tenant));
    const replies = await orUnavailable(pipeline.exec());
    const failed = (replies ?? []).find(([error]) => error !== null)?.[0];
    if (failed) throw unavailable(failed);
    const hashes = (replies ?? []).map(([, value]) => (value ?? {}) as Record<string, string>);
    return {
      preferences: new Map(users.map((user, index) => [user, preferencesOf(hashes[index] ?? {})])),
      defaults: categoriesOf(hashes[users.length] ?? {}),
    };
  };
  return {
    read: async (tenant, user) => preferencesOf(await hgetall(keys.user(tenant, user))),
    async readWithDefaults(tenant, user) {
      const [userHash, defaultsHash] = await orUnavailable(readCommand(keys.user(tenant, user), keys.defaults(tenant)));
      return { preferences: preferencesOf(recordOf(userHash)), defaults: categoriesOf(recordOf(defaultsHash)) };
    },
    readManyWithDefaults: readMany,
    async set(tenant, user, ...setting) {
      const { category, channel, enabled } = checkSetting(...setting);
      const hash = await run(keys.user(tenant, user), `c:${category}`, channel, enabled ? '1' : '0', limit);
      if (hash === undefined) throw new PreferenceLimitError(limit);
      return preferencesOf(hash);
    },
    async setQuietHours(tenant, user, quietHours) {
      const hash = await run(keys.user(tenant, user), 'q', '', quietHours === undefined ? '' : JSON.stringify(quietHours), limit);
      return preferencesOf(hash ?? {});
    },
    defaults: async (tenant): Promise<CategorySettings> => categoriesOf(await hgetall(keys.defaults(tenant))),
    async setDefault(tenant, ...setting) {
      const { category, channel, enabled } = checkSetting(...setting);
      const hash = await run(keys.defaults(tenant), `c:${category}`, channel, enabled ? '1' : '0', MAX_DEFAULT_CATEGORIES);
      if (hash === undefined) throw new Failure('LIMIT_EXCEEDED', `a tenant may set defaults for at most ${MAX_DEFAULT_CATEGORIES} categories`);
      return categoriesOf(hash);
    },
  };
}
