/** Notification ids as resume cursors: `<epoch>_<ms>-<seq>`, parsed strictly and ordered. */
import { describe, expect, it } from 'vitest';
import { compareIds } from '../../src/broker/history.js';
import { compareStreamIds, formatCursor, parseCursor, streamId } from '../../src/common/cursor.js';

describe('parseCursor / formatCursor', () => {
  it('round-trips an id', () => {
    const cursor = parseCursor('a1b2_1700000000000-42');
    expect(cursor).toEqual({ epoch: 'a1b2', ms: 1_700_000_000_000, seq: 42 });
    expect(cursor && formatCursor(cursor)).toBe('a1b2_1700000000000-42');
    expect(cursor && streamId(cursor)).toBe('1700000000000-42');
  });

  it.each([
    ['not a string', 17],
    ['empty', ''],
    ['no epoch', '_1-1'],
    ['no sequence', 'e_1'],
    ['a sign', 'e_-1-1'],
    ['an epoch with a separator', 'e:x_1-1'],
    ['an epoch too long', `${'e'.repeat(33)}_1-1`],
    ['too many digits', 'e_1234567890123456-1'],
    ['trailing text', 'e_1-1 '],
  ])('refuses %s', (_what, value) => {
    expect(parseCursor(value)).toBeUndefined();
  });
});

describe('ordering', () => {
  it('orders stream ids by time, then sequence, as numbers', () => {
    expect(compareStreamIds('9-1', '10-0')).toBeLessThan(0);
    expect(compareStreamIds('10-2', '10-10')).toBeLessThan(0);
    expect(compareStreamIds('10-3', '10-3')).toBe(0);
    expect(compareStreamIds('11-0', '10-99')).toBeGreaterThan(0);
  });

  it('orders notification ids of one epoch by their stream ids', () => {
    expect(compareIds('e_9-1', 'e_10-0')).toBeLessThan(0);
    expect(compareIds('e_10-5', 'e_10-5')).toBe(0);
  });
});
