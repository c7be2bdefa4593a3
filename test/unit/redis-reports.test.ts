/**
 * Delivery counting without Redis: the subscribe side's reports of one turn leave as one
 * PUBLISH per publisher, the publish side reads one or many reports a message, and every
 * count's timeout is a deadline on one scheduler, not a timer of its own: no message and
 * no timer per notification.
 */
import { describe, expect, it } from 'vitest';
import { frameHead, parseFrame, parseReports, type Frame } from '../../src/broker/redis-frame.js';
import { createDeliveryReports } from '../../src/broker/redis-reports.js';
import { createDeadlineScheduler, type SchedulerClock } from '../../src/common/timers.js';

/** A publish function that records what it is asked to PUBLISH. */
function recordingPublisher(): { publish: (channel: string, message: string) => Promise<number>; sent: Array<[string, string]> } {
  const sent: Array<[string, string]> = [];
  const publish = (channel: string, message: string) => {
    sent.push([channel, message]);
    return Promise.resolve(1);
  };
  return { publish, sent };
}

const quiet = { warn: () => undefined };
const frameOf = (head: string, id: string): Frame => parseFrame(`${head}\n${id}\n{}`) as Frame;
const turnEnd = () => new Promise((resolve) => setImmediate(resolve));

/** A clock the test moves, and the one timer a scheduler may arm on it. */
function manualClock() {
  let now = 1_000_000;
  let armed: { callback: () => void; at: number } | undefined;
  let timersArmed = 0;
  const clock: SchedulerClock<number> = {
    now: () => now,
    setTimer: (callback, delayMs) => {
      timersArmed += 1;
      armed = { callback, at: now + delayMs };
      return timersArmed;
    },
    clearTimer: () => {
      armed = undefined;
    },
  };
  return {
    clock,
    get timersArmed() {
      return timersArmed;
    },
    advance(ms: number) {
      now += ms;
      if (armed && armed.at <= now) {
        const { callback } = armed;
        armed = undefined;
        callback();
      }
    },
  };
}

describe('delivery reports', () => {
  it("sends the reports of one turn as one PUBLISH per publisher, each publisher's reports in order", async () => {
    const { publish, sent } = recordingPublisher();
    const reports = createDeliveryReports({ publish, reportChannel: 'r:self', timeoutMs: 1000, logger: quiet });
    reports.reply(frameOf(frameHead('r:a', '1'), 'e1'), 1);
    reports.reply(frameOf(frameHead('r:b', '7'), 'e2'), 0);
    reports.reply(frameOf(frameHead('r:a', '2'), 'e3'), 3);
    reports.reply(frameOf(frameHead('', '0'), 'e4'), 5); // nobody counts this one
    expect(sent).toEqual([]); // not before the frames of the turn are all delivered
    await turnEnd();
    expect(sent).toEqual([
      ['r:a', '1 1\n2 3'],
      ['r:b', '7 0'],
    ]);
    reports.reply(frameOf(frameHead('r:a', '3'), 'e5'), 2);
    await turnEnd();
    expect(sent.at(-1)).toEqual(['r:a', '3 2']); // a single report reads as before
  });

  it('settles every count a batched report message completes, with the sum of its reports', async () => {
    const { publish } = recordingPublisher();
    const reports = createDeliveryReports({ publish, reportChannel: 'r:self', timeoutMs: 1000, logger: quiet });
    const first = reports.count();
    const second = reports.count();
    const sequenceOf = (head: string) => head.split('\n')[1] as string;
    const firstDelivered = first.delivered(2);
    const secondDelivered = second.delivered(1);
    reports.onReport(`${sequenceOf(first.head)} 3\n${sequenceOf(second.head)} 1`);
    reports.onReport(`${sequenceOf(first.head)} 4`);
    await expect(firstDelivered).resolves.toBe(7);
    await expect(secondDelivered).resolves.toBe(1);
    first.close();
    second.close();
  });

  it('keeps every count’s timeout on one scheduler: no timer per count, nothing left once closed', async () => {
    const time = manualClock();
    const scheduler = createDeadlineScheduler(time.clock);
    const { publish } = recordingPublisher();
    const reports = createDeliveryReports({ publish, reportChannel: 'r:self', timeoutMs: 1000, logger: quiet, scheduler, now: time.clock.now });
    const answered = [];
    for (let n = 0; n < 100; n++) {
      const count = reports.count();
      const sequence = count.head.split('\n')[1] as string;
      const delivered = count.delivered(1);
      reports.onReport(`${sequence} 1`);
      answered.push(delivered.finally(() => count.close()));
    }
    await Promise.all(answered);
    expect(time.timersArmed).toBe(1);
    expect(scheduler.size).toBe(0);
  });

  it('resolves a count at its timeout with the reports that arrived', async () => {
    const time = manualClock();
    const scheduler = createDeadlineScheduler(time.clock);
    const { publish } = recordingPublisher();
    const reports = createDeliveryReports({ publish, reportChannel: 'r:self', timeoutMs: 1000, logger: quiet, scheduler, now: time.clock.now });
    const count = reports.count();
    const delivered = count.delivered(2);
    reports.onReport(`${count.head.split('\n')[1] as string} 5`);
    let settled = false;
    void delivered.then(() => (settled = true));
    time.advance(999);
    await turnEnd();
    expect(settled).toBe(false);
    time.advance(1);
    await expect(delivered).resolves.toBe(5);
    count.close();
  });
});

describe('parseReports', () => {
  it('reads one report or several, and skips (and counts) a malformed line', () => {
    expect(parseReports('7 3')).toEqual({ reports: [{ sequence: '7', delivered: 3 }], malformed: 0 });
    expect(parseReports('7 3\n8 0\nbad\n9 1')).toEqual({
      reports: [
        { sequence: '7', delivered: 3 },
        { sequence: '8', delivered: 0 },
        { sequence: '9', delivered: 1 },
      ],
      malformed: 1,
    });
    expect(parseReports('')).toEqual({ reports: [], malformed: 1 });
  });
});
