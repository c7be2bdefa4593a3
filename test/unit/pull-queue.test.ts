/**
 * A queue: one subscription's bounded sink, read as an async iterator (SSE, gRPC).
 */
import { describe, expect, it } from 'vitest';
import { createPullQueue, type PullQueue } from '../../src/core/pull-queue.js';

class OverflowError extends Error {}

function setup(maxQueued = 10): { feed: PullQueue<number>; ends: () => number; overflows: () => number } {
  let ends = 0;
  let overflows = 0;
  const feed = createPullQueue<number>({
    maxQueued,
    onEnd: () => {
      ends += 1;
    },
    overflowError: () => {
      overflows += 1;
      return new OverflowError(`more than ${maxQueued} behind`);
    },
  });
  return { feed, ends: () => ends, overflows: () => overflows };
}

/** Reads until the feed ends or fails; what arrived, and the error if it failed. */
async function drain(feed: PullQueue<number>): Promise<{ items: number[]; error: unknown }> {
  const items: number[] = [];
  try {
    for (;;) {
      const result = await feed.next();
      if (result.done) return { items, error: undefined };
      items.push(result.value);
    }
  } catch (error) {
    return { items, error };
  }
}

const DONE = { value: undefined, done: true };

describe('createPullQueue', () => {
  it('hands an item straight to a waiting reader', async () => {
    const { feed } = setup();
    const first = feed.next();
    expect(feed.deliver(1)).toBe(true);
    expect(await first).toEqual({ value: 1, done: false });
    const second = feed.next();
    expect(feed.deliver(2)).toBe(true);
    expect(await second).toEqual({ value: 2, done: false });
  });

  it('queues items for a reader that is not waiting, in order', async () => {
    const { feed } = setup();
    for (const item of [1, 2, 3]) expect(feed.deliver(item)).toBe(true);
    expect(await feed.next()).toEqual({ value: 1, done: false });
    expect(feed.deliver(4)).toBe(true);
    expect([(await feed.next()).value, (await feed.next()).value, (await feed.next()).value]).toEqual([2, 3, 4]);
  });

  it('is its own async iterator and ends when the loop breaks', async () => {
    const { feed, ends } = setup();
    for (const item of [1, 2, 3]) feed.deliver(item);
    const seen: number[] = [];
    for await (const item of feed) {
      seen.push(item);
      if (item === 2) break;
    }
    expect(seen).toEqual([1, 2]);
    expect(ends()).toBe(1);
    expect(await feed.next()).toEqual(DONE);
  });

  describe('return()', () => {
    it('ends the feed, discards what was queued and calls onEnd once', async () => {
      const { feed, ends } = setup();
      feed.deliver(1);
      feed.deliver(2);
      expect(await feed.return()).toEqual(DONE);
      expect(ends()).toBe(1);
      expect(await feed.next()).toEqual(DONE);
      expect(feed.deliver(3)).toBe(false);
      expect(await feed.next()).toEqual(DONE);
    });

    it('ends a waiting reader', async () => {
      const { feed, ends } = setup();
      const waiting = feed.next();
      await feed.return();
      expect(await waiting).toEqual(DONE);
      expect(ends()).toBe(1);
    });

    it('calls onEnd once when called twice, also concurrently', async () => {
      const { feed, ends } = setup();
      await Promise.all([feed.return(), feed.return()]);
      expect(await feed.return()).toEqual(DONE);
      expect(ends()).toBe(1);
    });

    it('waits for an asynchronous onEnd', async () => {
      let finish: () => void = () => undefined;
      const events: string[] = [];
      const feed = createPullQueue<number>({
        maxQueued: 1,
        onEnd: () =>
          new Promise<void>((resolve) => {
            events.push('onEnd started');
            finish = () => {
              events.push('onEnd finished');
              resolve();
            };
          }),
        overflowError: () => new OverflowError(),
      });
      const returned = feed.return().then(() => events.push('return resolved'));
      expect(events).toEqual(['onEnd started']);
      finish();
      await returned;
      expect(events).toEqual(['onEnd started', 'onEnd finished', 'return resolved']);
    });
  });

  describe('fail()', () => {
    it('gives the reader what was queued, then the error, then the end; onEnd once', async () => {
      const { feed, ends } = setup();
      feed.deliver(1);
      feed.deliver(2);
      const error = new Error('broker gone');
      feed.fail(error);
      expect(feed.deliver(3)).toBe(false);
      expect(ends()).toBe(0); // the reader has not seen the error yet

      expect(await drain(feed)).toEqual({ items: [1, 2], error });
      expect(ends()).toBe(1);
      expect(await feed.next()).toEqual(DONE);
      expect(ends()).toBe(1);
    });

    it('rejects a waiting reader at once and ends the feed', async () => {
      const { feed, ends } = setup();
      const waiting = feed.next();
      const error = new Error('broker gone');
      feed.fail(error);
      await expect(waiting).rejects.toBe(error);
      expect(ends()).toBe(1);
      expect(await feed.next()).toEqual(DONE);
    });

    it('keeps the first error', async () => {
      const { feed } = setup();
      const first = new Error('first');
      feed.fail(first);
      feed.fail(new Error('second'));
      await expect(feed.next()).rejects.toBe(first);
    });

    it('then return() calls onEnd once', async () => {
      const { feed, ends } = setup();
      feed.deliver(1);
      feed.fail(new Error('broken'));
      await feed.return();
      await feed.return();
      expect(ends()).toBe(1);
      expect(await feed.next()).toEqual(DONE);
      expect(ends()).toBe(1);
    });

    it('after return() is ignored', async () => {
      const { feed, ends } = setup();
      await feed.return();
      feed.fail(new Error('late'));
      expect(await feed.next()).toEqual(DONE);
      expect(ends()).toBe(1);
    });
  });

  describe('overflow', () => {
    it('fails the feed with overflowError() after the queued items', async () => {
      const { feed, ends, overflows } = setup(3);
      expect([1, 2, 3, 4, 5].map((item) => feed.deliver(item))).toEqual([true, true, true, false, false]);
      expect(overflows()).toBe(1);

      const { items, error } = await drain(feed);
      expect(items).toEqual([1, 2, 3]);
      expect(error).toBeInstanceOf(OverflowError);
      expect((error as Error).message).toBe('more than 3 behind');
      expect(ends()).toBe(1);
    });

    it('does not count items taken by a waiting reader', async () => {
      const { feed } = setup(1);
      const waiting = feed.next();
      expect(feed.deliver(1)).toBe(true); // to the reader
      expect(feed.deliver(2)).toBe(true); // queued: 1 of 1
      expect(feed.deliver(3)).toBe(false); // one too many
      expect((await waiting).value).toBe(1);
      const { items, error } = await drain(feed);
      expect(items).toEqual([2]);
      expect(error).toBeInstanceOf(OverflowError);
    });

    it('never drops an item silently: every accepted item arrives, every other is refused', async () => {
      const { feed } = setup(5);
      let accepted = 0;
      let refused = 0;
      const reading = drain(feed);
      // the reader keeps up for a while, then stops reading (the items are delivered
      // faster than it can take them) until the feed overflows
      for (let item = 0; item < 50; item += 1) {
        if (feed.deliver(item)) accepted += 1;
        else refused += 1;
        if (item < 10) await Promise.resolve().then(() => undefined);
      }
      const { items, error } = await reading;
      expect(error).toBeInstanceOf(OverflowError);
      expect(items).toHaveLength(accepted);
      expect(items).toEqual(Array.from({ length: accepted }, (_, i) => i));
      expect(accepted + refused).toBe(50);
      expect(refused).toBeGreaterThan(0);
    });
  });
});
