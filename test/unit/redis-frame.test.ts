/** The Pub/Sub frame and the delivery report: written and parsed in one place. */
import { describe, expect, it } from 'vitest';
import { formatReport, frameHead, parseFrame, parseReport, UNCOUNTED_FRAME_HEAD } from '../../src/broker/redis-frame.js';

/** A frame as the publish script writes it: head, then id, then payload. */
const frame = (head: string, id: string, payload: string): string => `${head}\n${id}\n${payload}`;

describe('parseFrame', () => {
  it('reads a counted frame, a payload with newlines kept whole', () => {
    expect(parseFrame(frame(frameHead('herald:_reports:p1', '7'), 'e_1-1', '{"text":"a\nb"}'))).toEqual({
      replyTo: 'herald:_reports:p1',
      sequence: '7',
      id: 'e_1-1',
      payload: '{"text":"a\nb"}',
    });
  });

  it('reads an uncounted frame: no report channel', () => {
    expect(parseFrame(frame(UNCOUNTED_FRAME_HEAD, 'e_1-2', '{}'))).toMatchObject({ replyTo: '', id: 'e_1-2', payload: '{}' });
  });

  it.each(['', 'no separators', 'one\ntwo', 'one\ntwo\nthree'])('refuses %j', (message) => {
    expect(parseFrame(message)).toBeUndefined();
  });
});

describe('delivery reports', () => {
  it('round-trips', () => {
    expect(parseReport(formatReport('7', 3))).toEqual({ sequence: '7', delivered: 3 });
    expect(parseReport(formatReport('8', 0))).toEqual({ sequence: '8', delivered: 0 });
  });

  it.each(['', '7', '7 ', ' 3', '7 -1', '7 1.5', '7 lots', `7 ${2 ** 60}`])('refuses %j', (message) => {
    expect(parseReport(message)).toBeUndefined();
  });
});
