/**
 * A feed is one subscription's queue of notifications, read as an async iterator by
 * whichever transport serves it. It is bounded: a reader that falls more than
 * `maxQueued` behind is ended with an error, never silently skipped.
 */

export interface FeedOptions {
  /** Most notifications held for a reader that has not taken them yet. */
  maxQueued: number;
  /** Called once when the feed ends, however it ends (return, error, overflow). */
  onEnd: () => Promise<void> | void;
  /** The error a reader gets once it is more than `maxQueued` behind. */
  overflowError: () => Error;
}

export interface Feed<Item> extends AsyncIterableIterator<Item> {
  /** Queues `item` for the reader; false if the feed has ended or just overflowed. */
  deliver(item: Item): boolean;
  /** Queues `items` regardless of `maxQueued` (a page of history the reader asked for). */
  preload(items: readonly Item[]): void;
  /** Resolves once the reader has taken all but `maxQueued / 2` of the queue, or the feed ended. */
  room(): Promise<void>;
  /** Ends the feed with `error`: the reader gets what was queued, then the error. */
  fail(error: Error): void;
  /** Ends the feed now; what was queued is discarded. */
  return(): Promise<IteratorReturnResult<undefined>>;
}

interface Reader<Item> {
  resolve(result: IteratorResult<Item>): void;
  reject(error: Error): void;
}

export function createFeed<Item>(options: FeedOptions): Feed<Item> {
  const queue: Item[] = [];
  /** Pending `next()` calls, oldest first; only ever non-empty while `queue` is empty. */
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
    queue.length = 0;
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

  const feed: Feed<Item> = {
    deliver(item) {
      if (ended || failure) return false;
      if (handOver(item)) return true;
      if (queue.length >= options.maxQueued) {
        feed.fail(options.overflowError());
        return false;
      }
      queue.push(item);
      return true;
    },
    preload(items) {
      if (ended || failure) return;
      let index = 0;
      while (index < items.length && handOver(items[index] as Item)) index += 1;
      queue.push(...items.slice(index));
    },
    room() {
      if (ended || failure || queue.length <= roomAt) return Promise.resolve();
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
      if (queue.length > 0) {
        const value = queue.shift() as Item;
        if (roomWaiters.length > 0 && queue.length <= roomAt) wakeRoomWaiters();
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
      return feed;
    },
  };
  return feed;
}
