/**
 * The embedded broker: one process, no Redis. Used by `npm start` without `REDIS_URL`
 * and by fast tests; it passes the same contract suite as the Redis broker.
 */
import type { Broker, MessageSink } from './types.js';

export function createInProcessBroker(): Broker {
  const channels = new Set<string>();
  let sink: MessageSink | undefined;
  let closed = false;
  return {
    kind: 'in-process',
    listen(next) {
      if (sink) throw new Error('the broker already has a sink');
      sink = next;
    },
    async subscribe(channel) {
      channels.add(channel);
    },
    async unsubscribe(channel) {
      channels.delete(channel);
    },
    async publish(channel, payload) {
      if (!sink || !channels.has(channel)) return 0;
      return sink(channel, payload);
    },
    isReady: () => !closed,
    async close() {
      closed = true;
      channels.clear();
    },
  };
}
