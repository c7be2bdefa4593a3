/**
 * The broker carries encoded notifications between publish and subscribe servers and
 * keeps their history. It knows channels, stream keys and strings only: no GraphQL, no
 * transport, no observers.
 */
import type { Destination } from '../names/index.js';
import type { Cursor, ReadPosition } from '../common/cursor.js';
import type { AcceptedEvent } from '../ledger/events.js';

/** One notification as the broker carries it: its id (a cursor) and its encoded body. */
export interface BrokerMessage {
  readonly id: string;
  readonly payload: string;
}

/**
 * Receives every message of every subscribed channel and returns how many live
 * subscriptions it reached in this process (the subscribe server's observer map).
 */
export type MessageHandler = (channel: string, message: BrokerMessage) => number;

export interface PublishRequest {
  readonly destination: Destination;
  /** The tenant's history key (`Namer.tenantKey`). */
  readonly tenantKey: string;
  /** The encoded notification, without its id. */
  readonly payload: string;
  /** A repeat of `key` within `windowMs` returns the first publish's id and delivers nothing. */
  readonly idempotency?: { readonly key: string; readonly windowMs: number } | undefined;
  /**
   * Whether to count the live subscriptions reached (`receivedUsers`). Counting waits
   * for every subscribe server's delivery report; a caller that does not want the count
   * is answered as soon as the notification is stored and published. Always counted
   * with an idempotency key (a repeat reports the first publish's count).
   * @default true
   */
  readonly countDeliveries?: boolean | undefined;
  /**
   * Starts the notification's ledger with its accepted event, in the same atomic step
   * (no extra round trip); a repeated idempotency key records nothing. @default no ledger
   */
  readonly ledger?: LedgerStart | undefined;
  /**
   * A push-stream entry written in the same atomic step as the publish (no round trip of
   * its own). A broker that cannot (the in-process one, a Cluster's sharded push stream)
   * ignores it and says so in `PublishResult.pushQueued`. @default none
   */
  readonly push?: ScriptedPush | undefined;
}

/** A push-stream entry for the publish to write (`PublishRequest.push`). */
export interface ScriptedPush {
  /** The push stream's key (one stream: one node or Sentinel). */
  readonly stream: string;
  /** About how many entries the stream keeps (`XADD MAXLEN ~`). */
  readonly maxLength: number;
  /** The entry's JSON before the notification's id, which the publish makes… */
  readonly head: string;
  /** …and after it. */
  readonly tail: string;
  /**
   * `always`: whatever the publish reached. `unheard`: only when no subscribe server
   * listens on the channel, so nobody can have got it live (a count may still show
   * later that nobody did, and the caller queues it then).
   */
  readonly when: 'always' | 'unheard';
}

/** The ledger's first event, as the publish records it (`at` is the broker's clock). */
export interface LedgerStart {
  readonly tenant: string;
  /** Where the Redis broker makes the timeline: `LedgerKeys.prefixOf(tenant)`, the id after it. */
  readonly keyPrefix: string;
  readonly event: Omit<AcceptedEvent, 'at'>;
}

export interface PublishResult {
  /** The notification's id (a cursor). */
  readonly id: string;
  /**
   * Live subscriptions reached across every subscribe server (for a repeat: by the
   * first); undefined when the request did not ask for the count.
   */
  readonly receivedUsers: number | undefined;
  /** True when an idempotency key matched an earlier publish, which is what was returned. */
  readonly duplicate: boolean;
  /** True when the publish wrote `PublishRequest.push`'s entry; else absent. */
  readonly pushQueued?: true | undefined;
}

export interface HistoryRequest {
  readonly tenantKey: string;
  /** The subscriber's streams (user, stores, company). */
  readonly streams: readonly string[];
}

/** A read of one page after a position. */
export interface HistoryAfterRequest extends HistoryRequest {
  readonly after: ReadPosition;
  /** Most entries in the page. */
  readonly limit: number;
  /**
   * Most bytes of payload in the page: it ends with the entry that reaches it (so it
   * always holds one while any follow). @default unbounded
   */
  readonly maxBytes?: number;
}

/**
 * What one page of a read after a position found: the entries (oldest first) and
 * whether more follow the last of them, or that some were lost.
 */
export type HistoryAfter =
  | { readonly gap: false; readonly entries: readonly BrokerMessage[]; readonly more: boolean }
  | { readonly gap: true; readonly reason: string };

/**
 * Told about the subscribed channels' connection to the backend. Between `interrupted`
 * and `resubscribed`, messages on those channels may have been lost (published while the
 * connection was down, or in flight when it dropped); history after `resubscribed` holds
 * every one of them.
 */
export interface ChannelEvents {
  /** The connection carrying `channels` dropped. */
  interrupted(channels: readonly string[]): void;
  /** `channels` are subscribed again: what is published from now on is delivered. */
  resubscribed(channels: readonly string[]): void;
}

/** One page of history, newest first. */
export type HistoryPage =
  | { readonly gap: false; readonly entries: readonly BrokerMessage[]; readonly hasMore: boolean }
  | { readonly gap: true; readonly reason: string };

/** Moves a user's read position forward, and tells the user's devices when it moved. */
export interface MarkReadRequest {
  /** Where the position is kept (`Namer.readStateKey`). */
  readonly key: string;
  /** The user's tenant's hash (`Namer.tenantKey`): its epoch and newest id bound the position. */
  readonly tenantKey: string;
  /** The user's own channel, on which the change is published. */
  readonly channel: string;
  /** The id of the newest notification read. */
  readonly upTo: Cursor;
  /** The encoded change, published with `upTo` as its id. */
  readonly payload: string;
}

export type MarkReadResult =
  | {
      /** The position now kept: `upTo` (or the tenant's newest id, if `upTo` is past it), or a later one already kept. */
      readonly readUpTo: Cursor;
      /** False when the kept position was already at or past `upTo`: nothing was published. */
      readonly advanced: boolean;
    }
  | {
      /** `upTo` is of an epoch the tenant does not have (its history was lost, or the id made up): nothing changed. */
      readonly unknownEpoch: string;
    };

/**
 * Carries notifications between publish and subscribe servers and keeps their history.
 *
 * **Order.** Every notification of one tenant takes its id from the tenant's one counter
 * (its epoch, then `ms-seq`) in the same atomic step that stores and publishes it, so,
 * within one epoch:
 * - ids of one tenant are unique and increase in the order publishes were carried out:
 *   a publish that starts after another was acknowledged gets a greater id, whatever
 *   channel, connection or process each went through;
 * - a subscriber (one `listen` handler) is given the notifications of one tenant in
 *   strictly increasing id order, across all of that tenant's channels it subscribed
 *   (user, stores, company, topics), for as long as its channels stay heard. Between
 *   {@link ChannelEvents.interrupted} and `resubscribed` some may be missing, never
 *   reordered: the history holds them.
 *
 * `core/resume.ts` relies on both: once a live notification newer than the last one read
 * from history arrives, every later one is newer too, so it stops filtering. Read-state
 * changes (`markRead`) travel on the same channel but carry the position's id, which may
 * be older than notifications already given: they are outside this order.
 *
 * Bounds: ids of different epochs (a Redis that restarted empty) do not compare. On a
 * Redis Cluster the order holds because a tenant's channels share one hash slot, hence
 * one master and one shard connection. Across a failover, an acknowledged publish the
 * replicas did not hold yet is lost and its successors' ids follow the new master's
 * counter (and clock), so the order holds for what survived: `REDIS_MIN_REPLICAS_ACKED`
 * makes such a publish fail as `OUTCOME_UNKNOWN` instead of being acknowledged.
 * `test/contract/broker.test.ts` ("ordering") checks both points over every broker.
 */
export interface Broker {
  /**
   * Sets the one message handler of this broker (the observer map), and who is told when subscribed channels may have
   * missed messages; a second call throws.
   */
  listen(handler: MessageHandler, events?: ChannelEvents): void;
  /**
   * Starts delivering `channel` to the handler. Resolves only once the broker has
   * confirmed the subscription; rejects with {@link BrokerUnavailableError}.
   */
  subscribe(channel: string): Promise<void>;
  /** Stops delivering `channel`. Never rejects: a failure is logged. */
  unsubscribe(channel: string): Promise<void>;
  /**
   * Appends the notification to its stream and publishes it, in one atomic step, and
   * resolves once every subscribe server that got it has reported its deliveries.
   * Rejects with {@link BrokerUnavailableError} without waiting when the broker is down.
   */
  publish(request: PublishRequest): Promise<PublishResult>;
  /**
   * One page of the entries of `streams` after `after`, oldest first, merged into one
   * sequence — the first `limit` of them (or up to `maxBytes`) however many streams
   * there are and however their entries fall (the Redis broker may end a page sooner
   * past its read budget, never with fewer than one while any follow; `more` says some
   * may follow: read the next page after the last entry) — or a gap when some may be
   * missing: the cursor is from an earlier history (Redis restarted empty), or entries
   * after it were trimmed. A position without an epoch reads the current history from
   * that time on. Bounded in backend time and memory by `limit`.
   */
  readAfter(request: HistoryAfterRequest): Promise<HistoryAfter>;
  /** Up to `limit` entries of `streams` before `before` (or the newest), newest first. */
  readPage(request: HistoryRequest & { readonly before: Cursor | undefined; readonly limit: number }): Promise<HistoryPage>;
  /**
   * Keeps `upTo` as the read position at `key` unless a later one (same epoch) is kept,
   * and then publishes the change on `channel`, in one atomic step. `upTo` must be of
   * the tenant's current epoch (else nothing changes: `unknownEpoch`), and is taken no
   * further than the tenant's newest id: a position in the future would show every
   * later notification as read. A kept position of another epoch is replaced, one past
   * the newest id taken back to it. Kept until deleted; rejects as `publish` does.
   */
  markRead(request: MarkReadRequest): Promise<MarkReadResult>;
  /**
   * Tells every subscription on `channel` a message that is not a notification (a
   * user's changed preferences): published with `id` and `payload` as they are, never
   * kept in history, never counted. Rejects as `publish` does.
   */
  signal(channel: string, id: string, payload: string): Promise<void>;
  /** The read position kept at `key`, if any. */
  readPosition(key: string): Promise<Cursor | undefined>;
  /** Whether the broker can subscribe and publish right now (`/readyz`). */
  isReady(): boolean;
  /** Releases everything the broker holds. The clients given to it are not closed. */
  close(): Promise<void>;
}
