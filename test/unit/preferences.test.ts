/**
 * Preferences as pure decisions: quiet hours in the user's zone (across midnight, both
 * daylight-saving changes), `decidePush` and `showsInApp`, checked case by case and by a
 * property test over random preference sets against an independent oracle; and the
 * in-memory store's bounds and versions.
 */
import { describe, expect, it } from 'vitest';
import { CHANNELS, type Channel } from '../../src/preferences/channels.js';
import { decidePush, showsInApp } from '../../src/preferences/decide.js';
import { decodePreferencesChange, encodePreferencesChange, type ChannelSettings, type UserPreferences } from '../../src/preferences/preferences.js';
import { parseQuietHours, quietUntil, type QuietHours } from '../../src/preferences/quiet-hours.js';
import { createMemoryPreferenceStore } from '../../src/preferences/store.js';
import { seededRandom as random } from '../support/random.js';

const paris = (start: string, end: string): QuietHours => ({ start, end, timeZone: 'Europe/Paris' });
const at = (iso: string): number => Date.parse(iso);

describe('quiet hours', () => {
  it('defer to the window’s end across midnight, in the zone, and not outside it', () => {
    // 23:30 in Paris (winter, UTC+1) is inside 22:00–07:00; it ends at 07:00 Paris = 06:00Z.
    expect(quietUntil(paris('22:00', '07:00'), at('2026-01-10T22:30:00Z'))).toBe(at('2026-01-11T06:00:00Z'));
    // 06:59:59 Paris: still inside, the same end.
    expect(quietUntil(paris('22:00', '07:00'), at('2026-01-11T05:59:59Z'))).toBe(at('2026-01-11T06:00:00Z'));
    // 07:00 Paris: outside.
    expect(quietUntil(paris('22:00', '07:00'), at('2026-01-11T06:00:00Z'))).toBeUndefined();
    expect(quietUntil(paris('12:00', '13:00'), at('2026-01-10T11:15:00Z'))).toBe(at('2026-01-10T12:00:00Z'));
    expect(quietUntil(paris('12:00', '13:00'), at('2026-01-10T10:59:00Z'))).toBeUndefined();
    // The same instant, another zone: 22:30Z is 17:30 in New York, outside.
    expect(quietUntil({ start: '22:00', end: '07:00', timeZone: 'America/New_York' }, at('2026-01-10T22:30:00Z'))).toBeUndefined();
  });

  it('end when the clock jumps past an end in the skipped hour (spring forward)', () => {
    // Paris, 2026-03-29: 02:00 CET becomes 03:00 CEST at 01:00Z; 02:30 never shows.
    expect(quietUntil(paris('01:00', '02:30'), at('2026-03-29T00:30:00Z'))).toBe(at('2026-03-29T01:00:00Z'));
    // An end after the jump: 07:00 CEST is 05:00Z.
    expect(quietUntil(paris('22:00', '07:00'), at('2026-03-28T22:00:00Z'))).toBe(at('2026-03-29T05:00:00Z'));
  });

  it('end the first time the clock shows the end in a repeated hour (fall back)', () => {
    // Paris, 2026-10-25: 03:00 CEST becomes 02:00 CET at 01:00Z; 02:30 shows at 00:30Z and 01:30Z.
    expect(quietUntil(paris('22:00', '02:30'), at('2026-10-24T21:00:00Z'))).toBe(at('2026-10-25T00:30:00Z'));
    // An end after the change: 06:00 CET is 05:00Z.
    expect(quietUntil(paris('22:00', '06:00'), at('2026-10-24T21:00:00Z'))).toBe(at('2026-10-25T05:00:00Z'));
  });

  it.each([
    [{ start: '7:00', end: '08:00', timeZone: 'UTC' }, /^start must be a time/],
    [{ start: '07:00', end: '24:00', timeZone: 'UTC' }, /^end must be a time/],
    [{ start: '07:00', end: '07:00', timeZone: 'UTC' }, /^end must differ from start/],
    [{ start: '07:00', end: '08:00', timeZone: 'Mars/Olympus' }, /^timeZone must be an IANA time zone/],
    [{ start: '07:00', end: '08:00', timeZone: 5 }, /^timeZone must be/],
  ])('refuses %o, naming the field', (input, message) => {
    expect(() => parseQuietHours(input)).toThrow(message);
  });
});

const none: UserPreferences = { version: 0, categories: new Map() };

describe('decidePush and showsInApp', () => {
  const muted: UserPreferences = { version: 1, categories: new Map([['promo', { FCM: false, IN_APP: false }]]) };

  it('refuses a category turned off for the device’s kind, and only for that kind', () => {
    expect(decidePush(muted, new Map(), { category: 'promo' }, 'FCM', 0)).toEqual({ action: 'refuse', reason: 'refused by preference: category "promo" is off for FCM' });
    expect(decidePush(muted, new Map(), { category: 'promo' }, 'APNS', 0)).toEqual({ action: 'send' });
    expect(decidePush(muted, new Map(), { category: 'billing' }, 'FCM', 0)).toEqual({ action: 'send' });
    expect(decidePush(muted, new Map(), {}, 'FCM', 0)).toEqual({ action: 'send' });
  });

  it('follows the tenant’s default unless the user chose, and sends a critical one whatever', () => {
    const defaults = new Map<string, ChannelSettings>([['digest', { WEB_PUSH: false, IN_APP: false }]]);
    expect(decidePush(none, defaults, { category: 'digest' }, 'WEB_PUSH', 0).action).toBe('refuse');
    const chose: UserPreferences = { version: 1, categories: new Map([['digest', { WEB_PUSH: true }]]) };
    expect(decidePush(chose, defaults, { category: 'digest' }, 'WEB_PUSH', 0).action).toBe('send');
    expect(decidePush(none, defaults, { category: 'digest', critical: true }, 'WEB_PUSH', 0).action).toBe('send');
    expect(showsInApp(none.categories, defaults, { category: 'digest' })).toBe(false);
    expect(showsInApp(chose.categories, defaults, { category: 'digest' })).toBe(false);
    expect(showsInApp(none.categories, defaults, { category: 'digest', critical: true })).toBe(true);
    expect(showsInApp(none.categories, defaults, {})).toBe(true);
  });

  it('defers a non-critical push in quiet hours to their end; a critical one is sent', () => {
    const quiet: UserPreferences = { version: 1, categories: new Map(), quietHours: paris('22:00', '07:00') };
    const now = at('2026-01-10T22:30:00Z');
    expect(decidePush(quiet, new Map(), {}, 'FCM', now)).toEqual({ action: 'defer', untilMs: at('2026-01-11T06:00:00Z') });
    expect(decidePush(quiet, new Map(), { critical: true }, 'FCM', now)).toEqual({ action: 'send' });
    expect(decidePush(quiet, new Map(), {}, 'FCM', at('2026-01-10T12:00:00Z'))).toEqual({ action: 'send' });
  });
});


const CATEGORIES = ['a', 'b', 'c', 'constructor'];
const ZONES = ['UTC', 'Europe/Paris', 'America/New_York', 'Australia/Lord_Howe', 'Asia/Kolkata'];

function settings(rng: ReturnType<typeof random>): Map<string, ChannelSettings> {
  const map = new Map<string, ChannelSettings>();
  for (const category of CATEGORIES) {
    if (rng.next() < 0.5) continue;
    const channels: Partial<Record<Channel, boolean>> = {};
    for (const channel of CHANNELS) if (rng.next() < 0.5) channels[channel] = rng.next() < 0.5;
    map.set(category, channels);
  }
  return map;
}

/** The wall-clock minute of `ms` in `zone`, read independently of the code under test. */
const oracleFormats = new Map(ZONES.map((zone) => [zone, new Intl.DateTimeFormat('en-GB', { timeZone: zone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' })]));
function wallMinute(zone: string, ms: number): number {
  const text = oracleFormats.get(zone)?.format(ms) ?? '';
  const [hours, minutes] = text.split(':').map(Number);
  return (hours ?? 0) * 60 + (minutes ?? 0);
}

describe('property: every push decision and live delivery respects the preferences', () => {
  it('matches an oracle over random preference sets, notifications, kinds, zones and times', () => {
    const seed = Date.now() % 1_000_000;
    const rng = random(seed);
    const pad = (minute: number): string => `${String(Math.floor(minute / 60)).padStart(2, '0')}:${String(minute % 60).padStart(2, '0')}`;
    for (let round = 0; round < 300; round++) {
      const categories = settings(rng);
      const defaults = settings(rng);
      let quietHours: QuietHours | undefined;
      if (rng.next() < 0.5) {
        const start = Math.floor(rng.next() * 96) * 15;
        const end = (start + 15 + Math.floor(rng.next() * 94) * 15) % 1440;
        quietHours = { start: pad(start), end: pad(end), timeZone: rng.pick(ZONES) };
      }
      const preferences: UserPreferences = { version: 1, categories, quietHours };
      const notification = { category: rng.next() < 0.8 ? rng.pick(CATEGORIES) : undefined, critical: rng.next() < 0.15 };
      const kind = rng.pick(['FCM', 'WEB_PUSH', 'WEBHOOK', 'APNS'] as const);
      // Any time in 2026, DST changes included.
      const now = at('2026-01-01T00:00:00Z') + Math.floor(rng.next() * 365 * 1440) * 60_000 + Math.floor(rng.next() * 60_000);
      const context = `seed ${seed}, round ${round}`;

      const enabled = (channel: Channel): boolean => {
        const category = notification.category;
        if (category === undefined) return true;
        const own = categories.get(category)?.[channel];
        if (own !== undefined) return own;
        return defaults.get(category)?.[channel] ?? true;
      };
      expect(showsInApp(categories, defaults, notification), context).toBe(notification.critical || enabled('IN_APP'));

      const decision = decidePush(preferences, defaults, notification, kind, now);
      if (notification.critical) {
        expect(decision, context).toEqual({ action: 'send' });
        continue;
      }
      if (!enabled(kind)) {
        expect(decision.action, context).toBe('refuse');
        continue;
      }
      if (quietHours === undefined) {
        expect(decision, context).toEqual({ action: 'send' });
        continue;
      }
      // The oracle walks minute by minute to the first one outside the window.
      const [startH, startM] = quietHours.start.split(':').map(Number);
      const [endH, endM] = quietHours.end.split(':').map(Number);
      const start = (startH ?? 0) * 60 + (startM ?? 0);
      const end = (endH ?? 0) * 60 + (endM ?? 0);
      const quiet = (ms: number): boolean => {
        const minute = wallMinute(quietHours.timeZone, ms);
        return start < end ? minute >= start && minute < end : minute >= start || minute < end;
      };
      if (!quiet(now)) {
        expect(decision, context).toEqual({ action: 'send' });
        continue;
      }
      let until = Math.floor(now / 60_000) * 60_000;
      while (quiet(until)) until += 60_000;
      expect(decision, context).toEqual({ action: 'defer', untilMs: until });
    }
  });
});

describe('the in-memory store and the change message', () => {
  it('bounds the categories per user, counts versions, and keeps the tenant’s defaults apart', async () => {
    const store = createMemoryPreferenceStore({ maxCategoriesPerUser: 2 });
    await store.set('acme', 'ann', 'a', 'FCM', false);
    await store.set('acme', 'ann', 'a', 'IN_APP', false);
    const after = await store.set('acme', 'ann', 'b', 'APNS', true);
    expect(after.version).toBe(3);
    expect(Object.fromEntries(after.categories)).toEqual({ a: { FCM: false, IN_APP: false }, b: { APNS: true } });
    await expect(store.set('acme', 'ann', 'c', 'FCM', false)).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED' });
    await expect(store.set('acme', 'ann', 'a b', 'FCM', false)).rejects.toThrow(/^category "a b"/);
    await expect(store.set('acme', 'ann', 'a', 'SMS', false)).rejects.toThrow(/^channel must be one of IN_APP, FCM, WEB_PUSH, WEBHOOK, APNS/);
    await store.setDefault('acme', 'c', 'IN_APP', false);
    const { preferences, defaults } = await store.readWithDefaults('acme', 'ann');
    expect(preferences.version).toBe(3);
    expect(defaults.get('c')).toEqual({ IN_APP: false });
    expect((await store.readWithDefaults('other', 'ann')).defaults.size).toBe(0);
    expect((await store.read('acme', 'bob')).version).toBe(0);
  });

  it('encodes a change that decodes back and is never taken for a notification', () => {
    const preferences: UserPreferences = { version: 7, categories: new Map([['constructor', { IN_APP: false }]]) };
    const raw = encodePreferencesChange(preferences);
    expect(raw.startsWith('{"text"')).toBe(false);
    expect(decodePreferencesChange('7', raw)).toEqual({ version: 7, categories: preferences.categories });
    expect(decodePreferencesChange('7', '{"text":"hi"}')).toBeUndefined();
  });
});
