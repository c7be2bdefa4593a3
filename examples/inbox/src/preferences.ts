/**
 * The preferences panel: every category seen so far (in the inbox list, or with a
 * choice of the user's or a default of the tenant's) × the five channels, each a
 * checkbox that calls `setPreference`. Herald applies a change to every open
 * subscription of the user at once, on every device; the panel only redraws from the
 * answer. Category names are shown through `textContent` only.
 */
import { escapeBidiControls } from '../../../src/common/unsafe-text.js';

const CHANNELS = ['IN_APP', 'FCM', 'WEB_PUSH', 'WEBHOOK', 'APNS'] as const;
type Channel = (typeof CHANNELS)[number];

const CHANNEL_LABELS: Record<Channel, string> = { IN_APP: 'In app', FCM: 'FCM', WEB_PUSH: 'Web Push', WEBHOOK: 'Webhook', APNS: 'APNs' };

interface CategoryPreference {
  readonly category: string;
  readonly channels: ReadonlyArray<{ readonly channel: Channel; readonly enabled: boolean }>;
}

const PREFERENCE_FIELDS = 'categories { category channels { channel enabled } }';
const LOAD = `{ preferences { ${PREFERENCE_FIELDS} } notifications(first: 100) { edges { node { category } } } }`;
const SET = `mutation SetPreference($category: String!, $channel: Channel!, $enabled: Boolean!) {
  setPreference(category: $category, channel: $channel, enabled: $enabled) { ${PREFERENCE_FIELDS} }
}`;

export interface PreferencesPanel {
  /**
   * Reads the preferences and the categories of the recent list again (a burst of calls
   * costs one read in flight and one after it).
   */
  refresh(): void;
}

export function createPreferencesPanel(options: { url: string; token: string; onError: (message: string) => void }): PreferencesPanel {
  const table = document.querySelector<HTMLTableSectionElement>('[data-testid="preferences-rows"]');
  const empty = document.querySelector<HTMLElement>('[data-testid="preferences-empty"]');
  if (!table || !empty) throw new Error('the page has no preferences panel');
  /** Category → channel → enabled, as the server last said (a category only seen is all on). */
  const known = new Map<string, Map<Channel, boolean>>();

  const post = async (query: string, variables?: Record<string, unknown>): Promise<Record<string, unknown>> => {
    const response = await fetch(options.url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${options.token}` },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await response.json()) as { data?: Record<string, unknown>; errors?: Array<{ message: string }> };
    if (body.errors?.length) throw new Error(body.errors[0]?.message ?? 'the request failed');
    return body.data ?? {};
  };

  const take = (categories: readonly CategoryPreference[]): void => {
    for (const { category, channels } of categories) known.set(category, new Map(channels.map(({ channel, enabled }) => [channel, enabled])));
  };

  const draw = (): void => {
    empty.hidden = known.size > 0;
    table.replaceChildren(
      ...[...known.keys()].sort().map((category) => {
        const row = document.createElement('tr');
        const name = document.createElement('th');
        name.scope = 'row';
        name.dir = 'auto';
        name.textContent = escapeBidiControls(category);
        row.append(name);
        for (const channel of CHANNELS) {
          const cell = document.createElement('td');
          const box = document.createElement('input');
          box.type = 'checkbox';
          box.checked = known.get(category)?.get(channel) ?? true;
          box.dataset['testid'] = `pref-${category}-${channel}`;
          box.setAttribute('aria-label', `${category}: ${CHANNEL_LABELS[channel]}`);
          box.addEventListener('change', () => {
            box.disabled = true;
            post(SET, { category, channel, enabled: box.checked })
              .then((data) => take(((data['setPreference'] as { categories: CategoryPreference[] }) ?? { categories: [] }).categories))
              .catch((error: unknown) => options.onError(error instanceof Error ? error.message : String(error)))
              .finally(draw);
          });
          cell.append(box);
          row.append(cell);
        }
        return row;
      }),
    );
  };

  let reading = false;
  let again = false;
  const refresh = (): void => {
    if (reading) {
      again = true;
      return;
    }
    reading = true;
    post(LOAD)
      .then((data) => {
        take(((data['preferences'] as { categories: CategoryPreference[] }) ?? { categories: [] }).categories);
        const edges = (data['notifications'] as { edges: Array<{ node: { category: string | null } }> } | undefined)?.edges ?? [];
        for (const { node } of edges) if (node.category && !known.has(node.category)) known.set(node.category, new Map());
        draw();
      })
      .catch((error: unknown) => options.onError(error instanceof Error ? error.message : String(error)))
      .finally(() => {
        reading = false;
        if (again) {
          again = false;
          refresh();
        }
      });
  };

  return { refresh };
}
