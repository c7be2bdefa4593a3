/**
 * docs/configuration.md is what the settings table produces: a default, a bound or a
 * doc line changed in the table and not on the page (or the other way) fails here.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configurationPage, PAGE_COMMAND } from '../../src/config/page.js';
import { readConfig } from '../../src/config/index.js';
import { SETTINGS } from '../../src/config/settings.js';

describe('docs/configuration.md', () => {
  const onDisk = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');

  it('is what the settings table produces', () => {
    expect(onDisk, `docs/configuration.md differs from the settings table: run \`${PAGE_COMMAND}\``).toBe(configurationPage());
  });

  it('lists every setting, each once', () => {
    for (const name of Object.keys(SETTINGS)) {
      expect(onDisk.split(`\n| \`${name}\` |`)).toHaveLength(2);
    }
  });
});

describe('the settings table', () => {
  it('names every variable the reader reads: an unknown one in the environment changes nothing', () => {
    const read: string[] = [];
    const env = new Proxy<Record<string, string | undefined>>(
      {},
      {
        get: (_target, name) => {
          if (typeof name === 'string') read.push(name);
          return undefined;
        },
      },
    );
    readConfig(env);
    expect(new Set(read)).toEqual(new Set(Object.keys(SETTINGS)));
  });

  it('has integer defaults within their own bounds', () => {
    for (const [name, setting] of Object.entries(SETTINGS)) {
      const fallback = setting.default;
      if (typeof fallback !== 'number') continue;
      expect(setting.parse(String(fallback)), name).toBe(fallback);
    }
  });
});
