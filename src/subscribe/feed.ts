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
  /** Queues `items` regardless of `maxQueued` (a history backfill the reader asked for). */
  preload(items: readonly Item[]): void;
  /** Ends the feed with `error`: the reader gets what was queued, then the error. */
  fail(error: Error): void;
  /** Ends the feed now; what was queued is discarded. */
  return(): Promise<IteratorReturnResult<undefined>>;
}

export function createFeed<Item>(options: FeedOptions): Feed<Item> {
  const queue: Item[] = [];
  let waiting: ((result: IteratorResult<Item>) => void) | undefined;
  let waitingReject: ((error: Error) => void) | undefined;
  let failure: Error | undefined;
  let ended = false;

  const end = async (): Promise<void> => {
    if (ended) return;
    ended = true;
    queue.length = 0;
    waiting?.({ value: undefined, done: true });
    waiting = undefined;
    waitingReject = undefined;
    await options.onEnd();
  };

  const feed: Feed<Item> = {
    deliver(item) {
      if (ended || failure) return false;
      if (waiting) {
        const resolve = waiting;
        waiting = undefined;
        waitingReject = undefined;
        resolve({ value: item, done: false });
        return true;
      }
      if (queue.length >= options.maxQueued) {
        feed.fail(options.overflowError());
        return false;
      }
      queue.push(item);
      return true;
    },
    preload(items) {
      const [first, ...rest] = items;
      if (first === undefined || ended || failure) return;
      if (waiting) {
        const resolve = waiting;
        waiting = undefined;
        waitingReject = undefined;
        resolve({ value: first, done: false });
        queue.push(...rest);
      } else {
        queue.push(first, ...rest);
      }
    },
    fail(error) {
      if (ended || failure) return;
      failure = error;
      if (waitingReject) {
        const reject = waitingReject;
        waiting = undefined;
        waitingReject = undefined;
        reject(error);
        void end();
      }
    },
    next() {
      if (queue.length > 0) return Promise.resolve({ value: queue.shift() as Item, done: false });
      if (failure && !ended) {
        const error = failure;
        return end().then(() => Promise.reject(error));
      }
      if (ended) return Promise.resolve({ value: undefined, done: true });
      return new Promise((resolve, reject) => {
        waiting = resolve;
        waitingReject = reject;
      });
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
