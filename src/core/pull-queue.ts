/**
 * The queue of one subscription whose transport pulls (SSE, gRPC): its
 * notifications, read as an async iterator. It is bounded, and never skips silently: an
 * item that does not fit is refused (`deliver` returns false) and its producer brings it
 * later — a subscription reads it from history once the reader has room — or, with
 * `overflowError`, a reader more than `maxQueued` behind is ended with that error.
 */

export interface PullQueueOptions<Item> {
  /**
   * Most held for a reader that has not taken it yet, in the unit of `weigh` (items, or
   * bytes).
   */
  maxQueued: number;
  /** What one item counts against `maxQueued`. @default 1 (a count of items) */
  weigh?: (item: Item) => number;
  /** Called once when the queue ends, however it ends (return, error, overflow). */
  onEnd: () => Promise<void> | void;
  /**
   * The error a reader gets once it is more than `maxQueued` behind. Without one, an item
   * that does not fit is refused (`deliver` returns false) and the queue goes on: its
   * producer must bring it later (a subscription reads it from history).
   */
  overflowError?: (() => Error) | undefined;
}

export interface PullQueue<Item> extends AsyncIterableIterator<Item> {
  /** Queues `item` for the reader; false if the queue has ended, overflowed, or is full. */
  deliver(item: Item): boolean;
  /** Queues `items` regardless of `maxQueued` (a page of history the reader asked for). */
  preload(items: readonly Item[]): void;
  /** Resolves once what is queued weighs at most `maxQueued / 2`, or the queue ended. */
  room(): Promise<void>;
  /** Ends the queue with `error`: the reader gets what was queued, then the error. */
  fail(error: Error): void;
  /** Ends the queue now; what was queued is discarded. */
  return(): Promise<IteratorReturnResult<undefined>>;
}

interface Reader<Item> {
  resolve(result: IteratorResult<Item>): void;
  reject(error: Error): void;
}

export function createPullQueue<Item>(options: PullQueueOptions<Item>): PullQueue<Item> {
  const weigh = options.weigh ?? (() => 1);
  const waiting: Item[] = [];
  /** What `waiting` weighs. */
  let queued = 0;
  /** Pending `next()` calls, oldest first; only ever non-empty while `waiting` is empty. */
  const readers: Array<Reader<Item>> = [];
  let failure: Error | undefined;
  let ended = false;
  /** Waiting for the queue to shrink to `roomAt`. */
  let roomWaiters: Array<() => void> = [];
  const roomAt = Math.floor(options.maxQueued / 2);
  const wakeRoomWaiters = (): void => {
    const waiters = roomWaiters;
    roomWaiters = [];
    for (const wake of waiters) wake();
  };

  const end = async (): Promise<void> => {
    if (ended) return;
    ended = true;
    waiting.length = 0;
    queued = 0;
    for (const reader of readers.splice(0)) reader.resolve({ value: undefined, done: true });
    wakeRoomWaiters();
    await options.onEnd();
  };

  /** Hands `item` to the oldest waiting reader; false if none waits. */
  const handOver = (item: Item): boolean => {
    const reader = readers.shift();
    reader?.resolve({ value: item, done: false });
    return reader !== undefined;
  };

  const queue: PullQueue<Item> = {
    deliver(item) {
      if (ended || failure) return false;
      if (handOver(item)) return true;
      const weight = weigh(item);
      if (queued + weight > options.maxQueued) {
        if (options.overflowError) queue.fail(options.overflowError());
        return false;
      }
      waiting.push(item);
      queued += weight;
      return true;
    },
    preload(items) {
      if (ended || failure) return;
      let index = 0;
      while (index < items.length && handOver(items[index] as Item)) index += 1;
      for (; index < items.length; index++) {
        const item = items[index] as Item;
        waiting.push(item);
        queued += weigh(item);
      }
    },
    room() {
      if (ended || failure || queued <= roomAt) return Promise.resolve();
      return new Promise<void>((resolve) => roomWaiters.push(resolve));
    },
    fail(error) {
      if (ended || failure) return;
      failure = error;
      wakeRoomWaiters();
      if (readers.length > 0) {
        for (const reader of readers.splice(0)) reader.reject(error);
        void end();
      }
    },
    next() {
      if (waiting.length > 0) {
        const value = waiting.shift() as Item;
        queued -= weigh(value);
        if (roomWaiters.length > 0 && queued <= roomAt) wakeRoomWaiters();
        return Promise.resolve({ value, done: false });
      }
      if (failure && !ended) {
        const error = failure;
        return end().then(() => Promise.reject(error));
      }
      if (ended) return Promise.resolve({ value: undefined, done: true });
      return new Promise((resolve, reject) => readers.push({ resolve, reject }));
    },
    async return() {
      await end();
      return { value: undefined, done: true };
    },
    async throw(error: unknown) {
      await end();
      throw error;
    },
    [Symbol.asyncIterator]() {
      return queue;
    },
  };
  return queue;
}
