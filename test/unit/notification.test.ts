/** The notification codec: what the publish server encodes, each subscribe server decodes once. */
import { describe, expect, it } from 'vitest';
import { decodeNotification, encodeNotification } from '../../src/common/notification.js';

const body = { text: 'line one\nline two "quoted" ✓', timestamp: 1_700_000_000, audience: 'STORE', sender: 'billing' } as const;

describe('encodeNotification / decodeNotification', () => {
  it('round-trips a notification, with the id the broker gave it', () => {
    expect(decodeNotification('e_1-1', encodeNotification(body))).toEqual({ id: 'e_1-1', ...body });
  });

  it.each([
    ['not JSON', '{text'],
    ['not an object', '"text"'],
    ['null', 'null'],
    ['a text that is not a string', JSON.stringify({ ...body, text: 1 })],
    ['no timestamp', JSON.stringify({ ...body, timestamp: undefined })],
    ['an unknown audience', JSON.stringify({ ...body, audience: 'EVERYONE' })],
    ['no sender', JSON.stringify({ ...body, sender: undefined })],
  ])('refuses %s', (_what, raw) => {
    expect(decodeNotification('e_1-1', raw)).toBeUndefined();
  });
});
