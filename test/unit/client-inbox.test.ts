/** @herald/client's inbox store: markRead queued while offline and sent once, read state from other devices. */
import { describe, expect, it } from 'vitest';
import { createInboxStore } from '../../packages/client/src/inbox.js';
import type { SourceOperation } from '../../packages/client/src/source.js';

const note = (id: string) => ({ id, text: id, timestamp: 0, audience: 'USER' as const });

function recordingStore() {
  const sent: SourceOperation[] = [];
  const store = createInboxStore({
    userName: 'bob',
    recentLimit: 3,
    request: async (operation) => {
      sent.push(operation);
      return operation.query.includes('notifications(') ? { notifications: { edges: [{ node: note('e_1-1') }], readUpTo: null } } : { markNotificationsRead: {} };
    },
    report: (error) => {
      throw error;
    },
  });
  const marks = () => sent.filter((operation) => operation.query.includes('markNotificationsRead')).map((operation) => operation.variables?.['upTo']);
  return { store, sent, marks };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

describe('createInboxStore', () => {
  it('counts unread after the read position and keeps the newest recentLimit', async () => {
    const { store } = recordingStore();
    for (const id of ['e_1-2', 'e_1-3', 'e_1-4', 'e_1-5']) store.added(note(id));
    expect(store.inbox.recent.map((n) => n.id)).toEqual(['e_1-5', 'e_1-4', 'e_1-3']);
    expect(store.inbox.unreadCount).toBe(4); // e_1-2 left the list unread: still counted
    store.readStateChanged('e_1-4'); // read on another device
    expect(store.inbox.unreadCount).toBe(1);
    store.readStateChanged('e_1-2'); // never backwards
    expect(store.inbox.readUpTo).toBe('e_1-4');
  });

  it('queues markRead while offline, applies it locally at once, and sends the furthest once when live', async () => {
    const { store, marks } = recordingStore();
    store.added(note('e_1-2'));
    store.added(note('e_1-3'));
    let changes = 0;
    store.inbox.onChange(() => changes++);
    const first = store.inbox.markRead('e_1-2');
    const second = store.inbox.markRead();
    expect(store.inbox.unreadCount).toBe(0);
    expect(changes).toBe(2);
    await settle();
    expect(marks()).toEqual([]);
    store.status('live');
    await Promise.all([first, second]);
    expect(marks()).toEqual(['e_1-3']);
    store.status('connecting');
    store.status('live');
    await settle();
    expect(marks()).toEqual(['e_1-3']);
  });

  it("counts the unread the server knows of beyond the recent list, until the read position passes the list's oldest", async () => {
    const store = createInboxStore({
      userName: 'bob',
      recentLimit: 2,
      request: async () => ({ notifications: { edges: [{ node: note('e_1-9') }, { node: note('e_1-8') }], readUpTo: 'e_1-1', unreadCount: 7 } }),
      report: (error) => {
        throw error;
      },
    });
    store.status('live');
    await settle();
    expect(store.inbox.recent.map((n) => n.id)).toEqual(['e_1-9', 'e_1-8']);
    expect(store.inbox.unreadCount).toBe(7); // 2 held, 5 older the server counted
    store.added(note('e_1-10'));
    expect(store.inbox.unreadCount).toBe(8); // e_1-8 left the list, still unread
    store.readStateChanged('e_1-9'); // past the oldest held: everything older is read
    expect(store.inbox.unreadCount).toBe(1);
  });

  it('adds a notification delivered live while the list was read to the count the server gave as of its page', async () => {
    let answer: (value: unknown) => void = () => undefined;
    const store = createInboxStore({
      userName: 'bob',
      recentLimit: 10,
      request: () => new Promise((resolve) => (answer = resolve)),
      report: (error) => {
        throw error;
      },
    });
    store.status('live');
    await settle();
    // Stored after the server read the page below, delivered before its answer arrives.
    store.added(note('e_1-10'));
    answer({ notifications: { edges: [{ node: note('e_1-9') }, { node: note('e_1-8') }], readUpTo: 'e_1-1', unreadCount: 7 } });
    await settle();
    expect(store.inbox.recent.map((n) => n.id)).toEqual(['e_1-10', 'e_1-9', 'e_1-8']);
    expect(store.inbox.unreadCount).toBe(8); // the 7 the page's count knew of, and the one delivered since
  });

  it('reads the list again from the server after a gap', async () => {
    const { store, sent } = recordingStore();
    store.status('live');
    await settle();
    store.added(note('e_1-5'));
    expect(store.inbox.recent.map((n) => n.id)).toEqual(['e_1-5', 'e_1-1']);
    store.gap();
    await settle();
    expect(sent.filter((operation) => operation.query.includes('notifications(')).length).toBe(2);
    expect(store.inbox.recent.map((n) => n.id)).toEqual(['e_1-1']); // the server's list, nothing kept from before
  });

  it('seeds the recent list once, when first live', async () => {
    const { store, sent } = recordingStore();
    store.status('live');
    await settle();
    store.status('connecting');
    store.status('live');
    await settle();
    expect(sent.filter((operation) => operation.query.includes('notifications(')).length).toBe(1);
    expect(store.inbox.recent.map((n) => n.id)).toEqual(['e_1-1']);
  });
});
