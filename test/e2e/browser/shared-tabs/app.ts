/**
 * The app of the shared-tabs test (shared-tabs.test.ts): `@herald/client` as a page uses
 * it, with its defaults (shared among tabs, position in localStorage), recording what
 * each callback was handed on `window.heraldTab` for the test to read.
 */
// From the package's source (the root typecheck has no build of it); an app imports '@herald/client'.
import { createHeraldClient } from '../../../../packages/client/src/index.js';

export interface TabRecord {
  /** Each notification's text, as `onNotification` was called. */
  readonly delivered: string[];
  readonly statuses: string[];
  readonly gaps: string[];
  readonly errors: string[];
  /** Each `pagehide` and `pageshow`, as `<type> persisted=<persisted>` (bfcache-tab.test.ts). */
  readonly pageEvents: string[];
}

// Typed by hand: the repository's test config has Node's types, not the DOM's.
const page = globalThis as unknown as { location: { hash: string; href: string }; heraldTab?: TabRecord; addEventListener(type: string, listener: (event: { type: string; persisted?: boolean }) => void): void };
const token = new URLSearchParams(page.location.hash.slice(1)).get('token') ?? '';
const record: TabRecord = { delivered: [], statuses: [], gaps: [], errors: [], pageEvents: [] };
page.heraldTab = record;

const client = createHeraldClient({ url: new URL('/graphql', page.location.href).toString().replace(/^http/, 'ws'), token });
client.onNotification((notification) => record.delivered.push(notification.text));
client.onStatus((status) => record.statuses.push(status));
client.onGap((gap) => record.gaps.push(gap.reason));
client.onError((error) => record.errors.push(error.code));
for (const type of ['pagehide', 'pageshow']) page.addEventListener(type, (event) => record.pageEvents.push(`${event.type} persisted=${String(event.persisted)}`));
