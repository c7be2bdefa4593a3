/**
 * docs/configuration.md, produced from the settings table so the page and the reader
 * cannot disagree: `npx tsx scripts/configuration-page.ts` writes it, and a unit test
 * (test/unit/configuration-page.test.ts) fails when the page on disk differs.
 */
import { ALL, ByEnvironment, SECTIONS, type Role, type Setting } from './setting.js';
import { SETTINGS } from './settings.js';

/** The command that writes the page; the page and the test's failure name it. */
export const PAGE_COMMAND = 'npx tsx scripts/configuration-page.ts';

/** The whole of docs/configuration.md. */
export function configurationPage(): string {
  const rows = Object.entries(SETTINGS) as [string, Setting<unknown>][];
  const lines = [
    '# Configuration',
    '',
    'Every process reads the same environment. A bad value stops start-up with a message that',
    'names every bad variable. *read by* says which processes use a setting: `subscribe` and',
    '`publish` are the two servers, `push` the push worker; `npm start` runs all three in one.',
    '',
    `<!-- Produced from src/config/settings.ts and src/config/push-settings.ts by \`${PAGE_COMMAND}\`: edit the table there, not this page. -->`,
  ];
  for (const section of SECTIONS) {
    lines.push('', `## ${section}`, '', '| variable | what it does | default | accepts | read by |', '|---|---|---|---|---|');
    for (const [name, setting] of rows) {
      if (setting.section !== section) continue;
      const cells = [`\`${name}\``, setting.doc, shownDefault(setting), setting.accepts, readBy(setting.readBy)];
      lines.push(`| ${cells.map((cell) => cell.replace(/\|/g, '\\|')).join(' | ')} |`);
    }
  }
  lines.push(
    '',
    '## Tokens for operators',
    '',
    '`npm run token -- <name> --tenant acme [--stores s1,s2] [--scope notifications:publish] [--ttl 3600]`',
    'mints a token with `JWT_SECRET`, for operators and local testing (`node dist/token.js <name> …`',
    'where only the build is installed, as in the image).',
    '',
  );
  return lines.join('\n');
}

function shownDefault(setting: Setting<unknown>): string {
  if (setting.shownDefault !== undefined) return setting.shownDefault;
  const value = setting.default;
  if (value instanceof ByEnvironment) return `${shown(value.development)} in development, ${shown(value.production)} in production`;
  return shown(value);
}

function shown(value: unknown): string {
  if (value === undefined) return 'unset';
  if (typeof value === 'boolean') return value ? '`on`' : '`off`';
  if (typeof value === 'string') return `\`${value}\``;
  return String(value);
}

function readBy(roles: readonly Role[]): string {
  return ALL.every((role) => roles.includes(role)) ? 'all' : roles.join(', ');
}
