/**
 * Writes docs/configuration.md from the settings table (src/config/settings.ts and
 * src/config/push-settings.ts): `npx tsx scripts/configuration-page.ts`.
 */
import { writeFileSync } from 'node:fs';
import { configurationPage } from '../src/config/page.js';

const page = new URL('../docs/configuration.md', import.meta.url);
writeFileSync(page, configurationPage());
console.log(`wrote ${page.pathname}`);
