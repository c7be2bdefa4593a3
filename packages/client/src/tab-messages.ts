/**
 * What the tabs of `shared.ts` say to each other on their BroadcastChannel, and the one
 * function that checks it: another tab may run another version of this code, so nothing
 * arriving is trusted before {@link parseMessage} has looked at it.
 */
import { isRecord, type GraphQLFailure } from './graphql.js';
import type { SourceOperation } from './source.js';
import type { HeraldGap, HeraldNotification, HeraldStatus } from './types.js';

/** What the leader relays: the {@link SourceHandlers} calls, as data. */
export type RelayedEvent =
  | { readonly type: 'notification'; readonly notification: HeraldNotification }
  | { readonly type: 'readState'; readonly readUpTo: string }
  | { readonly type: 'gap'; readonly gap: HeraldGap }
  | { readonly type: 'status'; readonly status: HeraldStatus }
  | { readonly type: 'fatal'; readonly code: string; readonly message: string };

export type Kept = Extract<RelayedEvent, { type: 'notification' | 'readState' }>;

/** A request's failure as it crosses the channel. */
export interface RelayedError {
  readonly message: string;
  /** Set when the server answered with a GraphQL error. */
  readonly failure?: GraphQLFailure;
}

/** Everything said on the channel; `tab` is the sender, `to` the one tab addressed. */
export type Message =
  | { readonly kind: 'leader'; readonly tab: string }
  | { readonly kind: 'resign'; readonly tab: string }
  | { readonly kind: 'event'; readonly tab: string; readonly event: RelayedEvent }
  | { readonly kind: 'hello'; readonly tab: string; readonly since: string | undefined }
  | { readonly kind: 'replay'; readonly to: string; readonly events: readonly Kept[]; readonly gap: boolean; readonly status: HeraldStatus }
  | { readonly kind: 'request'; readonly tab: string; readonly id: number; readonly operation: SourceOperation }
  | { readonly kind: 'response'; readonly to: string; readonly id: number; readonly data?: unknown; readonly error?: RelayedError };

const STATUSES: ReadonlySet<unknown> = new Set<HeraldStatus>(['connecting', 'live', 'offline']);
const isString = (value: unknown): value is string => typeof value === 'string';

function parseNotification(value: unknown): HeraldNotification | undefined {
  if (!isRecord(value) || !isString(value['id']) || !isString(value['text']) || typeof value['timestamp'] !== 'number' || !isString(value['audience'])) return undefined;
  return value as unknown as HeraldNotification;
}

function parseEvent(value: unknown): RelayedEvent | undefined {
  if (!isRecord(value)) return undefined;
  switch (value['type']) {
    case 'notification': {
      const notification = parseNotification(value['notification']);
      return notification && { type: 'notification', notification };
    }
    case 'readState':
      return isString(value['readUpTo']) ? { type: 'readState', readUpTo: value['readUpTo'] } : undefined;
    case 'gap': {
      const gap = value['gap'];
      if (!isRecord(gap) || !isString(gap['reason'])) return undefined;
      return { type: 'gap', gap: { reason: gap['reason'], since: isString(gap['since']) ? gap['since'] : undefined } };
    }
    case 'status':
      return STATUSES.has(value['status']) ? { type: 'status', status: value['status'] as HeraldStatus } : undefined;
    case 'fatal':
      return isString(value['code']) && isString(value['message']) ? { type: 'fatal', code: value['code'], message: value['message'] } : undefined;
    default:
      return undefined;
  }
}

/** Checks what arrives on the channel: another tab may run another version of this code. */
export function parseMessage(data: unknown): Message | undefined {
  if (!isRecord(data)) return undefined;
  const { kind, tab, to } = data;
  switch (kind) {
    case 'leader':
    case 'resign':
      return isString(tab) ? { kind, tab } : undefined;
    case 'event': {
      const event = parseEvent(data['event']);
      return isString(tab) && event ? { kind, tab, event } : undefined;
    }
    case 'hello': {
      const since = data['since'];
      return isString(tab) && (since === undefined || isString(since)) ? { kind, tab, since } : undefined;
    }
    case 'replay': {
      const raw = data['events'];
      if (!isString(to) || !Array.isArray(raw) || !STATUSES.has(data['status'])) return undefined;
      const events = raw.map(parseEvent).filter((event): event is Kept => event?.type === 'notification' || event?.type === 'readState');
      return { kind, to, events, gap: data['gap'] === true, status: data['status'] as HeraldStatus };
    }
    case 'request': {
      const { id, operation } = data;
      if (!isString(tab) || typeof id !== 'number' || !isRecord(operation) || !isString(operation['query'])) return undefined;
      const variables = isRecord(operation['variables']) ? operation['variables'] : undefined;
      return { kind, tab, id, operation: { query: operation['query'], ...(variables ? { variables } : {}) } };
    }
    case 'response': {
      const { id, error } = data;
      if (!isString(to) || typeof id !== 'number') return undefined;
      if (!isRecord(error)) return { kind, to, id, data: data['data'] };
      const message = isString(error['message']) ? error['message'] : 'failed';
      const failure = error['failure'];
      if (isRecord(failure) && isString(failure['message']) && isString(failure['code'])) return { kind, to, id, error: { message, failure: { message: failure['message'], code: failure['code'] } } };
      return { kind, to, id, error: { message } };
    }
    default:
      return undefined;
  }
}
