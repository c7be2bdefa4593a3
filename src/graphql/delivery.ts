/**
 * `Query.delivery(id)`: one notification's ledger, read with one query. On the publish
 * server a service of the tenant (`notifications:publish`) reads all of it; on the
 * subscribe server a user reads the part that concerns them (`ledger/summary.ts`
 * `viewOf`). Another tenant's id, an unknown one, an expired one, or the ledger off: null.
 */
import { ForbiddenError, PUBLISH_SCOPE, type Principal } from '../auth/index.js';
import { graphqlError } from '../common/errors.js';
import { Failure } from '../common/failures.js';
import type { LedgerEvent, PushStatus } from '../ledger/events.js';
import { isNotificationId } from '../ledger/keys.js';
import type { LedgerReader } from '../ledger/store.js';
import { summarize, viewOf, type DeliverySummary } from '../ledger/summary.js';
import { requirePrincipal, type HeraldContext } from './schema.js';

export interface DeliveryResolverOptions {
  /** The ledger; none when it is off (`LEDGER_MAX_EVENTS=0`): every answer is null. */
  readonly reader: LedgerReader | undefined;
  /** `service`: the whole ledger, for the publish scope (publish server); `user`: the asker's part (subscribe server). */
  readonly view: 'service' | 'user';
}

const PUSH_KINDS: Readonly<Record<PushStatus, string>> = {
  queued: 'PUSH_QUEUED',
  accepted: 'PUSH_ACCEPTED',
  failed: 'PUSH_FAILED',
  retry: 'PUSH_RETRY',
  removed: 'DEVICE_REMOVED',
  dead_lettered: 'PUSH_DEAD_LETTERED',
  replayed: 'PUSH_REPLAYED',
  skipped: 'PUSH_SKIPPED',
};

const DEVICE_KINDS = new Set(['FCM', 'APNS', 'WEB_PUSH', 'WEBHOOK']);

const iso = (ms: number | undefined): string | null => (ms === undefined || !Number.isFinite(ms) ? null : new Date(ms).toISOString());
const upper = (value: string | undefined): string | null => (value === undefined ? null : value.toUpperCase());
const deviceKind = (kind: string): string | null => (DEVICE_KINDS.has(kind) ? kind : null);

/** One event as `type DeliveryEvent` shows it: the fields of its kind, the others null. */
function toDeliveryEvent(event: LedgerEvent) {
  const none = {
    publisher: null, audience: null, to: null, push: null,
    server: null, subscriptions: null, transports: null, users: null,
    user: null, device: null, deviceKind: null, attempt: null, reason: null, detail: null, nextAttemptAt: null, dryRun: null,
  };
  const at = iso(event.at);
  switch (event.type) {
    case 'accepted':
      return { ...none, at, kind: 'ACCEPTED', publisher: event.publisher, audience: event.audience, to: event.to, push: event.push };
    case 'live':
      return {
        ...none, at, kind: 'DELIVERED_LIVE', server: event.server, subscriptions: event.subscriptions,
        transports: { websocket: event.transports.websocket ?? 0, sse: event.transports.sse ?? 0, grpc: event.transports.grpc ?? 0 },
        users: event.users ?? null,
      };
    case 'push':
      return {
        ...none, at, kind: PUSH_KINDS[event.status] ?? 'PUSH_FAILED', user: event.user, device: event.device, deviceKind: deviceKind(event.kind),
        attempt: event.attempt ?? null, reason: upper(event.reason), detail: event.detail ?? null, nextAttemptAt: iso(event.nextAttemptAt), dryRun: event.dryRun ?? null,
      };
    case 'read':
      return { ...none, at, kind: 'READ', user: event.user };
  }
}

/** A summary as `type Delivery` shows it. */
function toDelivery(id: string, summary: DeliverySummary) {
  const { accepted } = summary;
  return {
    id,
    accepted: accepted && { at: iso(accepted.at), publisher: accepted.publisher, audience: accepted.audience, to: accepted.to, push: accepted.push },
    live: { subscriptions: summary.live.subscriptions, servers: summary.live.servers, byTransport: summary.live.transports },
    devices: summary.devices.map((device) => ({
      user: device.user,
      device: device.device,
      kind: deviceKind(device.kind),
      status: device.status.toUpperCase(),
      attempts: device.attempts,
      lastReason: upper(device.lastReason),
      lastDetail: device.lastDetail ?? null,
      at: iso(device.at),
    })),
    readBy: summary.readBy.map(({ user, at }) => ({ user, at: iso(at) })),
    eventsDropped: summary.eventsDropped,
    events: summary.events.map(toDeliveryEvent),
  };
}

export function createDeliveryResolvers({ reader, view }: DeliveryResolverOptions) {
  const read = async (principal: Principal, id: string) => {
    try {
      return await reader?.read(principal.tenant, id);
    } catch (error) {
      throw new Failure('SERVICE_UNAVAILABLE', 'Redis is unavailable: the ledger cannot be read', { cause: error });
    }
  };
  return {
    Query: {
      async delivery(_root: unknown, args: { id?: unknown }, context: HeraldContext) {
        const principal = requirePrincipal(context);
        if (view === 'service' && !principal.scopes.has(PUBLISH_SCOPE)) {
          throw new ForbiddenError(`a notification's whole ledger needs the "${PUBLISH_SCOPE}" scope; a user asks the subscribe server for their own part`);
        }
        if (!isNotificationId(args.id)) throw graphqlError('BAD_USER_INPUT', 'id is not a notification id');
        const record = await read(principal, args.id);
        if (record === undefined) return null;
        const shown = view === 'service' ? record : viewOf(record, principal);
        return shown === undefined ? null : toDelivery(args.id, summarize(shown));
      },
    },
  };
}
