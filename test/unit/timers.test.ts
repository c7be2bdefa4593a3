/**
 * The deadline scheduler behind `runAt`: one timer for every deadline, callbacks at (never
 * before) their time, however far away, and nothing left behind by a cancelled deadline —
 * neither in the scheduler nor in Node's timer lists.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { createDeadlineScheduler, MAX_TIMER_DELAY_MS, runAt, type SchedulerClock } from '../../src/common/timers.js';

/** A clock the test moves by hand; its timers fire only when the test says so. */
function manualClock(start: number) {
  const armed: Array<{ callback: () => void; delayMs: number; cleared: boolean }> = [];
  const clock: SchedulerClock<number> & { time: number } = {
    time: start,
    now: () => clock.time,
    setTimer(callback, delayMs) {
      armed.push({ callback, delayMs, cleared: false });
      return armed.length - 1;
    },
    clearTimer(timer) {
      armed[timer]!.cleared = true;
    },
  };
  const pending = () => armed.filter((timer) => !timer.cleared);
  /** Moves the clock to when the newest live timer is due and fires it. */
  const fireNext = (): void => {
    const timer = armed.at(-1);
    if (!timer || timer.cleared) throw new Error('no timer armed');
    timer.cleared = true;
    clock.time += timer.delayMs;
    timer.callback();
  };
  return { clock, armed, pending, fireNext };
}

describe('createDeadlineScheduler', () => {
  it('runs callbacks at their time, in order, never before it', async () => {
    const scheduler = createDeadlineScheduler();
    const start = Date.now();
    const offsets = [40, 5, 25, 5, 60, 15];
    const fired: Array<{ offset: number; at: number; now: number }> = [];
    const all = new Promise<void>((resolve) => {
      for (const offset of offsets) {
        const at = start + offset;
        scheduler.runAt(at, () => {
          fired.push({ offset, at, now: Date.now() });
          if (fired.length === offsets.length) resolve();
        });
      }
    });
    await all;
    expect(fired.map(({ offset }) => offset)).toEqual([5, 5, 15, 25, 40, 60]);
    for (const { at, now } of fired) expect(now).toBeGreaterThanOrEqual(at);
    expect(scheduler.size).toBe(0);
  });

  it('runs a deadline that has already passed at once', () => {
    const scheduler = createDeadlineScheduler();
    let ran = false;
    scheduler.runAt(Date.now() - 1, () => (ran = true));
    expect(ran).toBe(true);
    expect(scheduler.size).toBe(0);
  });

  it('keeps nothing of cancelled deadlines, whatever order they are set and cancelled in', () => {
    const { clock, pending } = manualClock(1_000_000);
    const scheduler = createDeadlineScheduler(clock);
    let ran = 0;
    const cancels = Array.from({ length: 5000 }, (_, n) => scheduler.runAt(clock.time + 1 + ((n * 7919) % 100_000), () => ran++));
    expect(scheduler.size).toBe(5000);
    // Cancel in a scrambled order, so removals come from every part of the heap.
    for (let n = 0; n < cancels.length; n++) cancels[(n * 2503) % cancels.length]!();
    expect(scheduler.size).toBe(0);
    expect(pending().length).toBeLessThanOrEqual(1);
    // The one timer left armed fires and finds nothing.
    for (const timer of pending()) {
      timer.cleared = true;
      timer.callback();
    }
    expect(ran).toBe(0);
    expect(pending()).toEqual([]);
  });

  it('removes the right deadline from the middle of the heap and still runs the rest in order', () => {
    const { clock, fireNext } = manualClock(0);
    const scheduler = createDeadlineScheduler(clock);
    const fired: number[] = [];
    const cancels = new Map<number, () => void>();
    for (const at of [50, 10, 40, 20, 30, 60, 70]) cancels.set(at, scheduler.runAt(at, () => fired.push(at)));
    cancels.get(40)!();
    cancels.get(10)!();
    while (scheduler.size > 0) fireNext();
    expect(fired).toEqual([20, 30, 50, 60, 70]);
  });

  it('holds one timer at a time, re-armed only for an earlier deadline', () => {
    const { clock, pending, armed } = manualClock(0);
    const scheduler = createDeadlineScheduler(clock);
    for (let n = 0; n < 100; n++) scheduler.runAt(1000 + n, () => undefined);
    expect(armed.length).toBe(1);
    scheduler.runAt(500, () => undefined);
    expect(armed.length).toBe(2);
    expect(pending().map(({ delayMs }) => delayMs)).toEqual([500]);
  });

  it('waits past the 2^31-1 ms a Node timer can hold, and fires at the deadline, not before', () => {
    const { clock, armed, fireNext } = manualClock(1_700_000_000_000);
    const scheduler = createDeadlineScheduler(clock);
    const fortyDays = 40 * 86_400_000;
    const at = clock.time + fortyDays;
    let ranAt: number | undefined;
    scheduler.runAt(at, () => (ranAt = clock.time));
    expect(armed[0]!.delayMs).toBe(MAX_TIMER_DELAY_MS);
    fireNext();
    expect(ranAt).toBeUndefined();
    expect(armed[1]!.delayMs).toBe(fortyDays - MAX_TIMER_DELAY_MS);
    fireNext();
    expect(ranAt).toBe(at);
  });

  it('waits again when its timer fires before the wall clock reaches the deadline', () => {
    const { clock, armed } = manualClock(0);
    const scheduler = createDeadlineScheduler(clock);
    let ran = false;
    scheduler.runAt(100, () => (ran = true));
    // The monotonic timer fired, but the wall clock says 97 (it was set back meanwhile).
    clock.time = 97;
    armed[0]!.callback();
    expect(ran).toBe(false);
    expect(armed[1]!.delayMs).toBe(3);
    clock.time = 100;
    armed[1]!.callback();
    expect(ran).toBe(true);
  });

  it('does not run a deadline cancelled by an earlier callback due at the same time', () => {
    const { clock, fireNext } = manualClock(0);
    const scheduler = createDeadlineScheduler(clock);
    let secondRan = false;
    const second = { cancel: () => undefined as void };
    scheduler.runAt(10, () => second.cancel());
    second.cancel = scheduler.runAt(10, () => (secondRan = true));
    fireNext();
    expect(secondRan).toBe(false);
    expect(scheduler.size).toBe(0);
  });
});

describe('runAt', () => {
  it("leaves none of Node's timer lists behind over 8,000 set-and-cancel cycles of distinct delays", async () => {
    // Node's timer lists are internal: counted in a process of its own with --expose-internals.
    const timers = fileURLToPath(new URL('../../src/common/timers.ts', import.meta.url));
    const script = `
      const { timerListMap } = require('internal/timers');
      const lists = () => Object.keys(timerListMap).length;
      import(${JSON.stringify(timers)}).then(({ runAt }) => {
        const before = lists();
        // One 24 h token per connection, each connecting a few ms after the last.
        for (let n = 0; n < 8000; n++) runAt(Date.now() + 86_400_000 - n * 3, () => {})();
        for (let n = 0; n < 8000; n++) runAt(Date.now() + 86_400_000 + n * 3, () => {})();
        console.log(JSON.stringify({ before, after: lists() }));
      });`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--expose-internals', '--import', 'tsx', '-e', script]);
    const { before, after } = JSON.parse(stdout) as { before: number; after: number };
    expect(after - before).toBeLessThanOrEqual(1);
  });

  it('runs a callback a few ms away', async () => {
    const at = Date.now() + 10;
    const ranAt = await new Promise<number>((resolve) => runAt(at, () => resolve(Date.now())));
    expect(ranAt).toBeGreaterThanOrEqual(at);
  });
});
