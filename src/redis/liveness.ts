/**
 * A Redis connection that goes silent — the host crashed, a NAT or conntrack entry was
 * lost, the VM was live-migrated, a proxy keeps its side open — is never closed by the
 * kernel in useful time (about 15 minutes of retransmissions; never behind a proxy), and
 * ioredis waits as long. redis-py, Lettuce and go-redis close and replace a connection
 * whose commands or pings time out; Herald does the same here:
 *
 * - every connection is PINGed every `intervalMs`, idle or not (the subscriber
 *   connection too: PING is allowed in subscriber mode);
 * - a PING not answered within `timeoutMs` — nothing arrived, or replies arrived for
 *   other commands, which means the stream is out of step — has its connection
 *   destroyed, not ended (a silent peer never answers a FIN), so ioredis' `close`
 *   handling runs at once: pending commands fail, ioredis connects again, and the
 *   broker's resubscribe-and-fill path runs on `ready`.
 *
 * A silent connection is therefore replaced within `intervalMs + timeoutMs` (3 s with
 * the defaults); ioredis' own `socketTimeout` ({@link redisClientOptions}) replaces one
 * sooner when a command is waiting and nothing at all arrives.
 */
import type { Redis } from 'ioredis';

export interface RedisLivenessOptions {
  /** The connections to watch, asked again at every check (a Cluster's nodes and shard connections come and go). */
  connections(): Iterable<Redis>;
  /**
   * How often each ready connection is PINGed.
   * @default 1000 (ms)
   */
  intervalMs?: number;
  /** How long a PING may go unanswered before its connection is replaced (`REDIS_COMMAND_TIMEOUT_MS`), in ms. */
  timeoutMs: number;
  logger: Pick<Console, 'warn'>;
  /** Told each time a connection is replaced. @default nothing */
  onReplaced?: () => void;
}

export interface RedisLiveness {
  /** Whether every watched connection answered its last PING in time (one that did not counts until it answers one). */
  readonly answering: boolean;
  /** Stops the checks; the connections stay as they are. */
  close(): void;
}

export function watchRedisLiveness(options: RedisLivenessOptions): RedisLiveness {
  const { timeoutMs, logger } = options;
  /** Connections with a PING in flight: each gets one at a time. */
  const pinging = new WeakSet<Redis>();
  /** Connections whose last PING went unanswered or failed, until one is answered. */
  const unanswered = new Set<Redis>();
  /** The deadlines of the PINGs in flight (one per connection at most), cleared on close. */
  const deadlines = new Set<NodeJS.Timeout>();

  const check = (client: Redis): void => {
    if (client.status !== 'ready' || pinging.has(client)) return;
    pinging.add(client);
    const stream = client.stream;
    let settled = false;
    const deadline = setTimeout(() => {
      deadlines.delete(deadline);
      if (settled) return;
      settled = true;
      pinging.delete(client);
      unanswered.add(client);
      // The PING may have been sent on a connection that has been replaced since.
      if (client.stream !== stream || client.status !== 'ready') return;
      replaceRedisConnection(client, `it answered no PING within ${timeoutMs} ms`, logger);
      options.onReplaced?.();
    }, timeoutMs);
    deadline.unref();
    deadlines.add(deadline);
    client.ping().then(
      () => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        deadlines.delete(deadline);
        pinging.delete(client);
        unanswered.delete(client);
      },
      () => {
        // Closed or refused: ioredis is already connecting again; the deadline decides
        // about a connection that is still there.
        unanswered.add(client);
      },
    );
  };

  const timer = setInterval(() => {
    const current = new Set(options.connections());
    // A connection given up for good (a Cluster node or shard connection replaced) no longer counts.
    for (const client of unanswered) if (!current.has(client)) unanswered.delete(client);
    for (const client of current) check(client);
  }, options.intervalMs ?? 1000);
  timer.unref();

  return {
    get answering() {
      return unanswered.size === 0;
    },
    close() {
      clearInterval(timer);
      // A PING still in flight must not replace a connection its owner is closing.
      for (const deadline of deadlines) clearTimeout(deadline);
      deadlines.clear();
    },
  };
}

/**
 * Drops `client`'s connection so that ioredis connects again (as its retry strategy
 * says; a connection made without one is given up, and its owner replaces it). Destroyed,
 * not ended: `disconnect()` only half-closes, and a silent peer never closes its side.
 */
export function replaceRedisConnection(client: Redis, why: string, logger: Pick<Console, 'warn'>): void {
  const { host, port } = client.options;
  logger.warn(`herald: replacing the Redis connection ${client.options.connectionName ?? ''} to ${host}:${port}: ${why}`);
  if (client.stream) client.stream.destroy();
  else client.disconnect(true);
}
