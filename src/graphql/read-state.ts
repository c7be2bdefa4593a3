/**
 * Read state: the id of the newest notification a user has read, kept by the broker per
 * user inside the tenant. From it come each listed notification's `read` flag and the
 * unread count (the bell's badge); `markNotificationsRead` moves it forward and the
 * broker tells the user's other devices on the user's own channel.
 */
import { authorizeReadState, type Principal } from '../auth/index.js';
import type { Broker } from '../broker/types.js';
import { assertValidName, type Namer } from '../names/index.js';
import { compareStreamIds, formatCursor, parseCursor, streamId, type Cursor } from '../common/cursor.js';
import { graphqlError } from '../common/errors.js';
import { READ_STATE_PAYLOAD } from '../common/notification.js';

/**
 * The unread count stops here: a badge shows "99+" long before, and counting is a
 * history read bounded by it.
 */
const MAX_UNREAD_COUNT = 100;

/** Whether the notification `id` is at or before `readUpTo` (a position of another history reads nothing as read). */
export function isRead(id: string, readUpTo: Cursor | undefined): boolean {
  const cursor = parseCursor(id);
  if (!cursor || !readUpTo || cursor.epoch !== readUpTo.epoch) return false;
  return compareStreamIds(streamId(cursor), streamId(readUpTo)) <= 0;
}

/** How many kept notifications of `principal` are newer than `readUpTo`, up to {@link MAX_UNREAD_COUNT}. */
export async function countUnread(broker: Broker, namer: Namer, principal: Principal, readUpTo: Cursor | undefined): Promise<number> {
  const tenantKey = namer.tenantKey(principal.tenant);
  const streams = namer.subscriberDestinations(principal).map(({ stream }) => stream);
  if (readUpTo) {
    let count = 0;
    let after = readUpTo;
    for (;;) {
      const page = await broker.readAfter({ tenantKey, streams, after, limit: MAX_UNREAD_COUNT + 1 - count });
      // A position from a lost history, or one whose successors were trimmed: all that
      // is kept is newer than it.
      if (page.gap) break;
      count += page.entries.length;
      const last = parseCursor(page.entries.at(-1)?.id);
      if (!page.more || !last || count >= MAX_UNREAD_COUNT) return Math.min(count, MAX_UNREAD_COUNT);
      after = last;
    }
  }
  const page = await broker.readPage({ tenantKey, streams, before: undefined, limit: MAX_UNREAD_COUNT });
  return page.gap ? 0 : page.entries.length;
}

/**
 * Moves `principal`'s read position to `upTo` (never back, never past the tenant's
 * newest notification), which tells the user's other devices, and returns the read
 * state after it. An id of another history than the tenant's current one is refused
 * (`BAD_USER_INPUT`, naming its epoch): nothing of it can be marked.
 */
export async function markRead(
  broker: Broker,
  namer: Namer,
  principal: Principal,
  args: { readonly userName: unknown; readonly upTo: unknown },
): Promise<{ readUpTo: string; unreadCount: number }> {
  authorizeReadState(principal, assertValidName('userName', args.userName));
  const upTo = parseCursor(args.upTo);
  if (!upTo) throw graphqlError('BAD_USER_INPUT', 'upTo is not a notification id');
  const marked = await broker.markRead({
    key: namer.readStateKey(principal.tenant, principal.name),
    tenantKey: namer.tenantKey(principal.tenant),
    channel: namer.destination(principal.tenant, 'USER', principal.name).channel,
    upTo,
    payload: READ_STATE_PAYLOAD,
  });
  if ('unknownEpoch' in marked) {
    // The epoch is a cursor's, checked to be letters and digits: safe to show.
    throw graphqlError(
      'BAD_USER_INPUT',
      `upTo is from notification history "${marked.unknownEpoch}", which is not the current one (it was lost, or the id was never given); list the notifications again and mark the newest`,
    );
  }
  const { readUpTo } = marked;
  return { readUpTo: formatCursor(readUpTo), unreadCount: await countUnread(broker, namer, principal, readUpTo) };
}
