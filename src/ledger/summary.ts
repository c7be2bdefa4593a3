/**
 * What a support person reads first about one notification, made from its timeline:
 * who sent it to whom, how many live subscriptions took it (by transport), each device's
 * push as it stands (the last status, attempts, the last reason), who read it. Pure:
 * `delivery(id)` and its tests call it on events as stored.
 */
import { LIVE_TRANSPORTS, type AcceptedEvent, type FailureReason, type LedgerEvent, type LiveTransport, type PushStatus } from './events.js';
import type { LedgerRecord } from './store.js';

/** One device's push, as its events leave it. */
export interface DeviceSummary {
  readonly user: string;
  readonly device: string;
  readonly kind: string;
  /** The last status recorded. */
  readonly status: PushStatus;
  /** The highest attempt number recorded (0: none was made). */
  readonly attempts: number;
  /** The last failure reason recorded, if any. */
  readonly lastReason: FailureReason | undefined;
  /** The last detail recorded, if any. */
  readonly lastDetail: string | undefined;
  /** When its last event happened, ms since the epoch. */
  readonly at: number;
}

export interface DeliverySummary {
  /** The timeline, in time order (events of one time in the order stored). */
  readonly events: readonly LedgerEvent[];
  readonly accepted: AcceptedEvent | undefined;
  readonly live: {
    /** Live subscriptions that took it, summed over every server. */
    readonly subscriptions: number;
    readonly transports: Readonly<Record<LiveTransport, number>>;
    /** Servers that delivered it. */
    readonly servers: number;
  };
  /** One row per (user, device), in the order each first appears. */
  readonly devices: readonly DeviceSummary[];
  /** Each user whose read position passed it, once, at the first time. */
  readonly readBy: ReadonlyArray<{ readonly user: string; readonly at: number }>;
  /** Events not kept: the timeline was full. */
  readonly eventsDropped: number;
}

export function summarize(record: LedgerRecord): DeliverySummary {
  const events = record.events
    .map((event, index) => ({ event, index }))
    .sort((a, b) => a.event.at - b.event.at || a.index - b.index)
    .map(({ event }) => event);
  let accepted: AcceptedEvent | undefined;
  const transports: Record<LiveTransport, number> = { websocket: 0, sse: 0, grpc: 0 };
  let subscriptions = 0;
  let servers = 0;
  const devices = new Map<string, { -readonly [K in keyof DeviceSummary]: DeviceSummary[K] }>();
  const readBy = new Map<string, number>();
  for (const event of events) {
    switch (event.type) {
      case 'accepted':
        accepted ??= event;
        break;
      case 'live':
        servers += 1;
        subscriptions += event.subscriptions;
        for (const transport of LIVE_TRANSPORTS) transports[transport] += event.transports[transport] ?? 0;
        break;
      case 'push': {
        const key = `${event.user}\n${event.device}`;
        const row = devices.get(key) ?? { user: event.user, device: event.device, kind: event.kind, status: event.status, attempts: 0, lastReason: undefined, lastDetail: undefined, at: event.at };
        row.status = event.status;
        row.at = event.at;
        if (event.attempt !== undefined) row.attempts = Math.max(row.attempts, event.attempt);
        if (event.reason !== undefined) row.lastReason = event.reason;
        if (event.detail !== undefined) row.lastDetail = event.detail;
        devices.set(key, row);
        break;
      }
      case 'read':
        if (!readBy.has(event.user)) readBy.set(event.user, event.at);
        break;
    }
  }
  return {
    events,
    accepted,
    live: { subscriptions, transports, servers },
    devices: [...devices.values()],
    readBy: [...readBy].map(([user, at]) => ({ user, at })),
    eventsDropped: record.dropped,
  };
}

/** Who a user is, as far as their part of a timeline goes. */
export interface LedgerViewer {
  readonly name: string;
  readonly stores: readonly string[];
}

/**
 * The part of `record` that concerns `viewer`: the accepted event; live events only of a
 * notification to that user (their counts are the user's own subscriptions); the user's
 * own push and read events. Undefined when nothing of it concerns the user: a
 * notification neither addressed to them (user, one of their stores, the company) nor
 * naming them in any event.
 */
export function viewOf(record: LedgerRecord, viewer: LedgerViewer): LedgerRecord | undefined {
  const accepted = record.events.find((event): event is AcceptedEvent => event.type === 'accepted');
  const toUser = accepted?.audience === 'USER' && accepted.to === viewer.name;
  const addressed = toUser || (accepted?.audience === 'STORE' && viewer.stores.includes(accepted.to)) || accepted?.audience === 'COMPANY';
  const events = record.events.filter((event) => {
    switch (event.type) {
      case 'accepted':
        return true;
      case 'live':
        return toUser;
      case 'push':
      case 'read':
        return event.user === viewer.name;
    }
  });
  const own = events.some((event) => event.type === 'push' || event.type === 'read');
  if (!addressed && !own) return undefined;
  // What was dropped may have been anyone's: the count is not the user's to read.
  return { events, dropped: 0 };
}
