/**
 * The unread count's bounds (src/graphql/read-state.ts), on the in-process broker: it
 * counts what the user is shown, stops at 100, and reads at most 1,000 entries however
 * many are hidden — so an entry shown past 1,000 hidden ones newer than it is not counted.
 */
import { describe, expect, it } from 'vitest';
import type { Principal } from '../../src/auth/index.js';
import { createInProcessBroker } from '../../src/broker/in-process.js';
import type { BrokerMessage } from '../../src/broker/types.js';
import { parseCursor } from '../../src/common/cursor.js';
import { decodeNotification, encodeNotification } from '../../src/common/notification.js';
import { countUnread } from '../../src/graphql/read-state.js';
import { createNamer } from '../../src/names/index.js';

const hour = 3_600_000;
const user: Principal = { name: 'ann', tenant: 'acme', stores: [], scopes: new Set(), expiresAt: Date.now() + hour };
const namer = createNamer('herald');
const shown = (entry: BrokerMessage): boolean => decodeNotification(entry.id, entry.payload)?.text !== 'hidden';

/** A broker whose history keeps everything, holding `texts` sent to `user` in order; resolves with their ids. */
async function history(texts: readonly string[]): Promise<{ broker: ReturnType<typeof createInProcessBroker>; ids: string[] }> {
  const broker = createInProcessBroker({ retention: { maxLength: 10_000, maxAgeMs: hour } });
  const ids: string[] = [];
  for (const text of texts) {
    const result = await broker.publish({
      destination: namer.destination('acme', 'USER', 'ann'),
      tenantKey: namer.tenantKey('acme'),
      payload: encodeNotification({ text, timestamp: 1_700_000_000, audience: 'USER', sender: 'test' }),
      countDeliveries: false,
    });
    ids.push(result.id);
  }
  return { broker, ids };
}

const repeat = (text: string, count: number): string[] => Array.from({ length: count }, () => text);

describe('countUnread', () => {
  it('counts a shown entry behind 999 hidden ones, and not one behind 1,000: it reads at most 1,000', async () => {
    const within = await history(['shown', ...repeat('hidden', 999)]);
    expect(await countUnread(within.broker, namer, user, undefined, shown)).toBe(1);
    const past = await history(['shown', ...repeat('hidden', 1000)]);
    expect(await countUnread(past.broker, namer, user, undefined, shown)).toBe(0);
    // every entry counts when none is hidden, up to 100
    expect(await countUnread(past.broker, namer, user, undefined)).toBe(100);
  });

  it('after a read position, counts what is newer and shown through pages of hidden ones, with the same bound', async () => {
    const { broker, ids } = await history(['read', ...repeat('hidden', 500), 'shown', ...repeat('hidden', 499), 'shown']);
    const readUpTo = parseCursor(ids[0]);
    // 1,001 entries after the position: the last one shown is the 1,001st, past the bound
    expect(await countUnread(broker, namer, user, readUpTo, shown)).toBe(1);
    expect(await countUnread(broker, namer, user, parseCursor(ids[1]), shown)).toBe(2);
  });
});
