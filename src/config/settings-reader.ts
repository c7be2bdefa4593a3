/**
 * Reads settings from the environment by the table's rows: a value that is unset (or
 * only spaces) takes the row's default; a bad one is a problem naming the variable, and
 * the default stands in for it so the rest can still be checked.
 */
import { ByEnvironment, Problems, type Setting } from './setting.js';
import { SETTINGS, type SettingName, type SettingValue } from './settings.js';

export type Env = Record<string, string | undefined>;

export class SettingsReader {
  constructor(
    private readonly env: Env,
    /** Every problem found so far, each naming its variable. */
    readonly problems: string[],
    private readonly production: boolean,
  ) {}

  /** The variable's trimmed text; undefined when unset or blank. */
  raw(name: SettingName): string | undefined {
    const value = this.env[name]?.trim();
    return value === undefined || value === '' ? undefined : value;
  }

  isSet(name: SettingName): boolean {
    return this.raw(name) !== undefined;
  }

  /** The setting's value, or its default when unset or bad (a bad value is a problem). */
  value<K extends SettingName>(name: K): SettingValue<K> {
    const setting: Setting<unknown> = SETTINGS[name];
    const raw = this.raw(name);
    if (raw !== undefined) {
      const parsed = setting.parse(raw);
      if (!(parsed instanceof Problems)) return parsed as SettingValue<K>;
      for (const text of parsed.texts) this.problems.push(`${name} ${text}`);
    }
    const fallback = setting.default;
    return (fallback instanceof ByEnvironment ? (this.production ? fallback.production : fallback.development) : fallback) as SettingValue<K>;
  }

  problem(text: string): void {
    this.problems.push(text);
  }
}
