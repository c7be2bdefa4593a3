/**
 * A feed is one subscription's queue of notifications, read as an async iterator by
 * whichever transport serves it. It is bounded: a reader that falls more than
 * `maxQueued` behind is ended with an error, never silently skipped.
 */
import type { Notification } from '../common/notification.js';
import type { Observer } from './observers.js';

export interface FeedOptions {
  /** Most notifications held for a reader that has not taken them yet. */
  maxQueued: number;
  /** Called once when the feed ends, however it ends (return, error, overflow). */
  onEnd: () => Promise<void> | void;
  /** The error a reader gets once it is more than `maxQueued` behind. */
  overflowError: () => Error;
}

export interface Feed extends Observer, AsyncIterableIterator<Notification> {
  /** Ends the feed with `error`: the reader gets what was queued, then the error. */
  fail(error: Error): void;
  /** Ends the feed now; what was queued is discarded. */
  return(): Promise<IteratorReturnResult<undefined>>;
}

export function createFeed(options: FeedOptions): Feed {
  const queue: Notification[] = [];
  let waiting: ((result: IteratorResult<Notification>) => void) | undefined;
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

  const feed: Feed = {
    deliver(notification) {
      if (ended || failure) return false;
      if (waiting) {
        const resolve = waiting;
        waiting = undefined;
        waitingReject = undefined;
        resolve({ value: notification, done: false });
        return true;
      }
      if (queue.length >= options.maxQueued) {
        feed.fail(options.overflowError());
        return false;
      }
      queue.push(notification);
      return true;
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
      const value = queue.shift();
      if (value !== undefined) return Promise.resolve({ value, done: false });
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
