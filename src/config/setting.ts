/**
 * What one row of the settings table is, and the kinds of value a row can hold: each kind
 * parses an operator's text, says what it accepts (for docs/configuration.md) and how its
 * default reads. The table itself is in ./settings.ts and ./push-settings.ts.
 */
import { parseCidr, type CidrNetwork } from './networks.js';

/** The processes that read a setting (all three in `npm start`'s one process). */
export type Role = 'subscribe' | 'publish' | 'push';

/** The parts of docs/configuration.md, in order; every setting sits in one. */
export const SECTIONS = ['Redis', 'Servers', 'Tokens and browsers', 'Connections and limits', 'History', 'Operations', 'Push'] as const;
export type Section = (typeof SECTIONS)[number];

/** A default that differs between development and `NODE_ENV=production`. */
export class ByEnvironment<T> {
  constructor(
    readonly development: T,
    readonly production: T,
  ) {}
}

/** What is wrong with a value: each entry follows the variable's name in the error. */
export class Problems {
  constructor(readonly texts: readonly string[]) {}
}

/** One environment variable: how it is read, what it does, its default and bounds. */
export interface Setting<T> {
  readonly section: Section;
  /** The processes that read it. */
  readonly readBy: readonly Role[];
  /** What it does, for an operator: one Markdown line. */
  readonly doc: string;
  /** Its value when unset (or set to nothing but spaces). */
  readonly default: T | ByEnvironment<T>;
  /**
   * The default column when the value alone does not say it: a default the reader derives
   * from another setting (then `default` is undefined), or one worth a word.
   */
  readonly shownDefault?: string;
  /** What a value must look like, for the page: `0–65535`, `on` or `off`, … */
  readonly accepts: string;
  /** Parses a trimmed, non-empty value. */
  parse(raw: string): T | Problems;
}

/** The parts every kind shares, as a table row states them. */
interface Row<T> {
  readonly section: Section;
  readonly readBy: readonly Role[];
  readonly doc: string;
  readonly default: T | ByEnvironment<T>;
  readonly shownDefault?: string;
}

/** Every process. */
export const ALL: readonly Role[] = ['subscribe', 'publish', 'push'];

/** A whole number within `min`–`max`. */
export function integer<D extends number | undefined>(row: Row<D> & { readonly min: number; readonly max: number; readonly unit?: string }): Setting<number | D> {
  const { min, max, unit, ...rest } = row;
  return {
    ...rest,
    accepts: `${min}–${max}${unit === undefined ? '' : ` (${unit})`}`,
    parse: (raw) => {
      const value = Number(raw);
      return /^\d+$/.test(raw) && value >= min && value <= max ? value : new Problems([`"${raw}" must be a whole number from ${min} to ${max}`]);
    },
  };
}

/** `on` or `off`, any case. */
export function toggle(row: Row<boolean>): Setting<boolean> {
  return {
    ...row,
    accepts: '`on` or `off`',
    parse: (raw) => {
      const lower = raw.toLowerCase();
      return lower === 'on' ? true : lower === 'off' ? false : new Problems([`"${raw}" must be on or off`]);
    },
  };
}

/** One of `choices`, any case. */
export function choice<const C extends string>(row: Row<C> & { readonly choices: readonly C[] }): Setting<C> {
  const { choices, ...rest } = row;
  return {
    ...rest,
    accepts: choices.map((name) => `\`${name}\``).join(', '),
    parse: (raw) => choices.find((name) => name === raw.toLowerCase()) ?? new Problems([`"${raw}" must be one of ${choices.join(', ')}`]),
  };
}

/**
 * Text, checked by `check` (which returns what is wrong, or undefined) and transformed by
 * `transform`.
 */
export function text<D extends string | undefined>(
  row: Row<D> & { readonly accepts: string; readonly check?: (raw: string) => string | undefined; readonly transform?: (raw: string) => string },
): Setting<string | D> {
  const { check, transform, ...rest } = row;
  return {
    ...rest,
    parse: (raw) => {
      const wrong = check?.(raw);
      return wrong === undefined ? (transform?.(raw) ?? raw) : new Problems([wrong]);
    },
  };
}

/** A `redis://` or `rediss://` URL. */
export function redisUrl(row: Row<undefined>): Setting<string | undefined> {
  return {
    ...row,
    accepts: '`redis://host:port`, `rediss://` for TLS',
    parse: (raw) => (hasProtocol(raw, 'redis:', 'rediss:') ? raw : new Problems([`"${raw}" must look like redis://host:port (or rediss:// for TLS)`])),
  };
}

/** An http:// or https:// URL, kept without a trailing slash. */
export function httpUrl(row: Row<string>): Setting<string> {
  return {
    ...row,
    accepts: 'an `http://` or `https://` URL',
    parse: (raw) => (hasProtocol(raw, 'http:', 'https:') ? raw.replace(/\/+$/, '') : new Problems([`"${raw}" must be an http:// or https:// URL`])),
  };
}

function hasProtocol(raw: string, ...protocols: string[]): boolean {
  try {
    return protocols.includes(new URL(raw).protocol);
  } catch {
    return false;
  }
}

/** A Redis node or sentinel, from a `host:port` list. */
export interface RedisAddress {
  readonly host: string;
  readonly port: number;
}

/** Comma-separated `host:port` (`[v6]:port` for IPv6); every bad entry is a problem. */
export function addresses(row: Row<undefined>): Setting<RedisAddress[] | undefined> {
  return {
    ...row,
    accepts: 'comma-separated `host:port`, `[v6]:port`',
    parse: (raw) => {
      const entries = splitList(raw);
      const found: RedisAddress[] = [];
      const problems: string[] = [];
      for (const entry of entries) {
        const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9][A-Za-z0-9.-]*)):(\d{1,5})$/.exec(entry);
        const host = match?.[1] ?? match?.[2];
        const port = Number(match?.[3]);
        if (host === undefined || port < 1 || port > 65535) {
          problems.push(`entry "${entry}" must be host:port, such as 10.0.0.5:26379 or [fd00::5]:26379`);
        } else {
          found.push({ host, port });
        }
      }
      if (entries.length === 0) problems.push('lists no host:port');
      return problems.length === 0 ? found : new Problems(problems);
    },
  };
}

/** Comma-separated CIDRs (a bare address is one host); every bad entry is a problem. */
export function networks(row: Row<readonly CidrNetwork[]>): Setting<readonly CidrNetwork[]> {
  return {
    ...row,
    accepts: 'comma-separated CIDRs',
    parse: (raw) => {
      const found: CidrNetwork[] = [];
      const problems: string[] = [];
      for (const entry of splitList(raw)) {
        try {
          found.push(parseCidr(entry));
        } catch (error) {
          problems.push(`entry ${error instanceof Error ? error.message : String(error)}`);
        }
      }
      return problems.length === 0 ? found : new Problems(problems);
    },
  };
}

/** Comma-separated exact origins (`https://app.example.com`); every bad entry is a problem. */
export function origins(row: Row<readonly string[]>): Setting<readonly string[]> {
  return {
    ...row,
    accepts: 'comma-separated origins',
    parse: (raw) => {
      const found: string[] = [];
      const problems: string[] = [];
      for (const entry of splitList(raw)) {
        let origin: string | undefined;
        try {
          origin = new URL(entry).origin;
        } catch {
          origin = undefined;
        }
        if (origin === undefined || origin === 'null' || origin !== entry.replace(/\/$/, '')) {
          problems.push(`entry "${entry}" must be an exact origin such as https://app.example.com (no wildcard, no path)`);
        } else {
          found.push(origin);
        }
      }
      return problems.length === 0 ? found : new Problems(problems);
    },
  };
}

function splitList(raw: string): string[] {
  return raw
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean);
}
