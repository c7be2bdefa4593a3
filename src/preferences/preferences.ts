/**
 * What a user chose: per category, which channels are on or off, and quiet hours; and
 * what a tenant's service chose as the default for each category and channel. A choice
 * not made is the tenant's default, and a default not set is on: a category nobody
 * chose anything for reaches every channel, as does a notification without a category.
 */
import { CHANNELS, type Channel } from './channels.js';
import { readQuietHours, type QuietHours } from './quiet-hours.js';
import { isValidName } from '../names/index.js';

/** Per channel: on (true) or off (false); a channel absent follows the default. */
export type ChannelSettings = Readonly<Partial<Record<Channel, boolean>>>;

/** Category → its channel settings. A Map: a category may be named `constructor`. */
export type CategorySettings = ReadonlyMap<string, ChannelSettings>;

export interface UserPreferences {
  /** Grows with every change, so a device that hears two changes keeps the newer. */
  readonly version: number;
  readonly categories: CategorySettings;
  readonly quietHours?: QuietHours | undefined;
}

export const NO_PREFERENCES: UserPreferences = { version: 0, categories: new Map() };
export const NO_DEFAULTS: CategorySettings = new Map();

/** Whether `category` reaches `channel`: the user's choice, else the tenant's default, else on. */
export function isEnabled(user: CategorySettings, defaults: CategorySettings, category: string, channel: Channel): boolean {
  return user.get(category)?.[channel] ?? defaults.get(category)?.[channel] ?? true;
}

/** Reads a stored channel-settings object; only channels with a boolean survive. */
export function readChannelSettings(value: unknown): ChannelSettings {
  if (typeof value !== 'object' || value === null) return {};
  const settings: Partial<Record<Channel, boolean>> = {};
  for (const channel of CHANNELS) {
    const enabled = (value as Record<string, unknown>)[channel];
    if (typeof enabled === 'boolean') settings[channel] = enabled;
  }
  return settings;
}

/** Reads stored `{ category: settings }` JSON (object form); malformed entries are dropped. */
function readCategorySettings(value: unknown): Map<string, ChannelSettings> {
  const categories = new Map<string, ChannelSettings>();
  if (typeof value !== 'object' || value === null) return categories;
  for (const [category, settings] of Object.entries(value)) {
    if (isValidName(category)) categories.set(category, readChannelSettings(settings));
  }
  return categories;
}

/**
 * The broker message that tells a user's open subscriptions their preferences changed:
 * its id is the new version, its body starts with this (never a notification's: a
 * notification body starts with `{"text"`).
 */
const CHANGE_HEAD = '{"kind":"preferences"';

export function encodePreferencesChange(preferences: UserPreferences): string {
  return `${CHANGE_HEAD},"categories":${JSON.stringify(Object.fromEntries(preferences.categories))}}`;
}

/** A change's preferences (without quiet hours, which only the push worker reads); undefined if `raw` is not one. */
export function decodePreferencesChange(id: string, raw: string): UserPreferences | undefined {
  if (!raw.startsWith(CHANGE_HEAD)) return undefined;
  const version = Number(id);
  if (!Number.isSafeInteger(version)) return undefined;
  try {
    const value = JSON.parse(raw) as Record<string, unknown>;
    return { version, categories: readCategorySettings(value['categories']) };
  } catch {
    return undefined;
  }
}

/** Stored quiet hours JSON back; undefined when absent or malformed. */
export function readStoredQuietHours(raw: string | undefined | null): QuietHours | undefined {
  if (raw == null) return undefined;
  try {
    return readQuietHours(JSON.parse(raw));
  } catch {
    return undefined;
  }
}
