/**
 * The ledger's live event: one per notification per subscribe server, made from the
 * observer map's counts ({@link LiveHandler}) and handed to the batched ledger writer.
 * The server is named by an instance id made once per process.
 */
import { hostname } from 'node:os';
import { LIVE_USERS_KEPT, LIVE_TRANSPORTS, type LedgerWriter, type LiveEvent, type LiveTransport } from '../ledger/events.js';
import type { LiveHandler } from './observers.js';

/** This process, as a live event names it: `<hostname>-<pid>`. */
const SERVER_INSTANCE_ID = `${hostname()}-${process.pid}`;

/** A {@link LiveHandler} that records one {@link LiveEvent} per notification into `ledger`. */
export function recordLiveInto(ledger: LedgerWriter, server: string = SERVER_INSTANCE_ID): LiveHandler {
  return (notification, tenant, subscriptions, counts, users) => {
    const transports: Partial<Record<LiveTransport, number>> = {};
    for (const transport of LIVE_TRANSPORTS) if (counts[transport] > 0) transports[transport] = counts[transport];
    let named: string[] | undefined;
    if (users !== undefined && users.size > 0) {
      named = [];
      for (const user of users) {
        if (named.length >= LIVE_USERS_KEPT) break;
        named.push(user);
      }
    }
    const event: LiveEvent = { type: 'live', at: Date.now(), server, subscriptions, transports, ...(named ? { users: named } : {}) };
    ledger.record(tenant, notification.id, event);
  };
}
