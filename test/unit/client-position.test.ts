/** @herald/client: the position — resume cursor and dedupe — and the core's exactly-once over a source that repeats. */
import { describe, expect, it } from 'vitest';
import { createClientCore, createHeraldClient } from '../../packages/client/src/client.js';
import { compareNotificationIds, createMemoryStorage, createPosition, positionKey } from '../../packages/client/src/position.js';
import type { NotificationSource, SourceHandlers } from '../../packages/client/src/source.js';
import type { HeraldNotification, HeraldSessionError } from '../../packages/client/src/types.js';

const note = (id: string): HeraldNotification => ({ id, text: id, timestamp: 0, audience: 'USER' });

describe('notification ids', () => {
  it('order by ms, then by seq numerically, within one epoch', () => {
    expect(compareNotificationIds('e1_100-2', 'e1_100-10')).toBeLessThan(0);
    expect(compareNotificationIds('e1_99-10', 'e1_100-1')).toBeLessThan(0);
    expect(compareNotificationIds('e1_100-1', 'e1_100-1')).toBe(0);
  });
  it('of different epochs have no order', () => {
    expect(compareNotificationIds('e1_100-1', 'e2_1-1')).toBeUndefined();
    expect(compareNotificationIds('nonsense', 'e1_1-1')).toBeUndefined();
  });
});

describe('createPosition', () => {
  it('delivers what is after it, drops what is at or before it, and persists per user', () => {
    const storage = createMemoryStorage();
    const position = createPosition(storage, 'bob');
    expect(position.accept('e_10-1')).toBe('deliver');
    expect(position.accept('e_10-2')).toBe('deliver');
    expect(position.accept('e_10-2')).toBe('repeat');
    expect(position.accept('e_10-1')).toBe('repeat');
    expect(storage.getItem(positionKey('bob'))).toBe('e_10-2');
    expect(createPosition(storage, 'bob').current).toBe('e_10-2');
    expect(createPosition(storage, 'alice').current).toBeUndefined();
  });
  it('reports a new epoch as a gap and moves to it', () => {
    const position = createPosition(createMemoryStorage(), 'bob');
    position.accept('old_10-1');
    expect(position.accept('new_1-1')).toBe('deliver-after-gap');
    expect(position.current).toBe('new_1-1');
    expect(position.accept('new_1-2')).toBe('deliver');
  });
  it('ignores a stored value that is not an id, and keeps working when storage throws', () => {
    const broken = { getItem: () => 'garbage', setItem: () => { throw new Error('quota'); } };
    const position = createPosition(broken, 'bob');
    expect(position.current).toBeUndefined();
    expect(position.accept('e_1-1')).toBe('deliver');
    expect(position.accept('e_1-1')).toBe('repeat');
  });
});

describe('the core over a source that repeats and reorders nothing but overlaps', () => {
  it('hands each notification to the app once, in order, and resumes with since = the last delivered', async () => {
    let handlers: SourceHandlers | undefined;
    const source: NotificationSource = { start: (given) => void (handlers = given), stop: () => undefined, request: async () => ({}) };
    const storage = createMemoryStorage();
    storage.setItem(positionKey('bob'), 'e_1-3');
    const client = createClientCore({ url: 'ws://unused', token: 'unused', userName: 'bob', storage }, () => source);
    const seen: string[] = [];
    const gaps: unknown[] = [];
    client.onNotification((notification) => seen.push(notification.id));
    client.onGap((gap) => gaps.push(gap));
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(handlers?.since()).toBe('e_1-3');
    // A resume overlaps what was delivered; a second resume overlaps again.
    for (const id of ['e_1-2', 'e_1-3', 'e_1-4', 'e_1-5', 'e_1-4', 'e_1-5', 'e_1-6']) handlers?.notification(note(id));
    expect(seen).toEqual(['e_1-4', 'e_1-5', 'e_1-6']);
    expect(handlers?.since()).toBe('e_1-6');
    expect(gaps).toEqual([]);
    handlers?.notification(note('f_1-1'));
    expect(seen.at(-1)).toBe('f_1-1');
    expect(gaps).toHaveLength(1);
    // The old history is gone from the server: the inbox keeps only what the new one holds.
    expect(client.inbox.recent.map((notification) => notification.id)).toEqual(['f_1-1']);
    expect(client.inbox.unreadCount).toBe(1);
    client.close();
  });
});

describe('createHeraldClient without a WebSocket', () => {
  it.skipIf('WebSocket' in globalThis)('ends the session with NO_WEBSOCKET, naming the fix, instead of throwing', async () => {
    const client = createHeraldClient({ url: 'ws://127.0.0.1:9/graphql', token: 'unused', userName: 'bob' });
    const error = await new Promise<HeraldSessionError>((resolve) => client.onError(resolve));
    expect(error.code).toBe('NO_WEBSOCKET');
    expect(error.message).toMatch(/webSocketImpl/);
    expect(client.status).toBe('offline');
  });
});
