/**
 * The only place a preference key is made: inside the tenant's `{tenant}` hash tag, like
 * its history and push keys, so a user's preferences and the tenant's defaults share a
 * Cluster slot and are read in one pipeline.
 */
import { assertValidName } from '../names/index.js';

export interface PreferenceKeys {
  /** Hash of a user's preferences: `v` version, `q` quiet hours JSON, `c:<category>` channel settings JSON. */
  user(tenant: string, user: string): string;
  /** Hash of the tenant's defaults: `c:<category>` channel settings JSON. */
  defaults(tenant: string): string;
}

export function createPreferenceKeys(prefix: string): PreferenceKeys {
  assertValidName('channel prefix', prefix);
  const tenantPart = (tenant: string): string => `${prefix}:{${assertValidName('tenant', tenant)}}:prefs`;
  return {
    user: (tenant, user) => `${tenantPart(tenant)}:user:${assertValidName('user name', user)}`,
    defaults: (tenant) => `${tenantPart(tenant)}:defaults`,
  };
}
