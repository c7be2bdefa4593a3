/**
 * Read state: the id of the newest notification a user has read, kept by the broker per
 * user inside the tenant. From it come each listed notification's `read` flag and the
 * unread count (the bell's badge); `markNotificationsRead` moves it forward and the
 * broker tells the user's other devices on the user's own channel.
 */
import { authorizeReadState, type Principal } from '../auth/index.js';
import type { Broker, BrokerMessage } from '../broker/types.js';
import { assertValidName, type Namer } from '../names/index.js';
import { compareStreamIds, formatCursor, parseCursor, streamId, type Cursor } from '../common/cursor.js';
import { graphqlError } from '../common/errors.js';
import { READ_STATE_PAYLOAD } from '../common/notification.js';
import type { LedgerWriter } from '../ledger/events.js';

/**
 * The unread count stops here: a badge shows "99+" long before, and counting is a
 * history read bounded by it.
 */
const MAX_UNREAD_COUNT = 100;

/** Most notifications one move of a read position records a read event for (the oldest passed first). */
const MAX_READ_EVENTS = 100;

/** Whether the notification `id` is at or before `readUpTo` (a position of another history reads nothing as read). */
export function isRead(id: string, readUpTo: Cursor | undefined): boolean {
  const cursor = parseCursor(id);
  if (!cursor || !readUpTo || cursor.epoch !== readUpTo.epoch) return false;
  return compareStreamIds(streamId(cursor), streamId(readUpTo)) <= 0;
}

/**
 * How many kept entries the unread count reads at most, shown or not: a user who hid a
 * busy category still gets an answer after a bounded read.
 */
const MAX_UNREAD_SCAN = 1000;

/** Whether the user sees a kept entry in the app (by their preferences); every entry when unset. */
export type ShownInApp = (entry: BrokerMessage) => boolean;
const everyEntry: ShownInApp = () => true;

/** One page of a count: its entries, whether more follow the last, or that history was lost (`gap`). */
type CountPage = { readonly entries: readonly BrokerMessage[]; readonly more: boolean } | 'gap';

/**
 * The entries `shown` among the pages `read` gives, each read from the last entry of the
 * one before (`undefined` for the first) and at most `limit` entries long (less where the
 * scan would pass {@link MAX_UNREAD_SCAN}), up to {@link MAX_UNREAD_COUNT}; `gap` with what
 * was counted when a page says history was lost.
 */
async function countPages(read: (from: Cursor | undefined, limit: number) => Promise<CountPage>, limit: (counted: number) => number, shown: ShownInApp): Promise<{ count: number; gap: boolean }> {
  let count = 0;
  let scanned = 0;
  let from: Cursor | undefined;
  for (;;) {
    const page = await read(from, Math.min(limit(count), MAX_UNREAD_SCAN - scanned));
    if (page === 'gap') return { count, gap: true };
    for (const entry of page.entries) if (shown(entry)) count += 1;
    scanned += page.entries.length;
    const last = parseCursor(page.entries.at(-1)?.id);
    if (count >= MAX_UNREAD_COUNT || scanned >= MAX_UNREAD_SCAN || !page.more || !last) return { count: Math.min(count, MAX_UNREAD_COUNT), gap: false };
    from = last;
  }
}

/**
 * `shown`, among the entries no newer than `newest` (a notification id): a count as of
 * a page read before it, which a notification stored since must not grow.
 */
function notAfter(newest: Cursor, shown: ShownInApp): ShownInApp {
  return (entry) => {
    const at = parseCursor(entry.id);
    const within = at === undefined || at.epoch !== newest.epoch || compareStreamIds(streamId(at), streamId(newest)) <= 0;
    return within && shown(entry);
  };
}

/**
 * How many kept notifications of `principal` newer than `readUpTo` the user sees (`shown`:
 * a category muted in the app is neither listed nor counted), up to
 * {@link MAX_UNREAD_COUNT}, among at most {@link MAX_UNREAD_SCAN} read. With `asOf` (the
 * newest entry of a page read before), those stored after it are not counted: the count
 * and the page then describe the same moment.
 */
export async function countUnread(
  broker: Broker,
  namer: Namer,
  principal: Principal,
  readUpTo: Cursor | undefined,
  shownInApp: ShownInApp = everyEntry,
  asOf?: Cursor,
): Promise<number> {
  const shown = asOf === undefined ? shownInApp : notAfter(asOf, shownInApp);
  const tenantKey = namer.tenantKey(principal.tenant);
  const streams = namer.subscriberDestinations(principal).map(({ stream }) => stream);
  if (readUpTo) {
    const after = await countPages(
      async (from, limit) => {
        const page = await broker.readAfter({ tenantKey, streams, after: from ?? readUpTo, limit });
        return page.gap ? 'gap' : { entries: page.entries, more: page.more };
      },
      (counted) => MAX_UNREAD_COUNT + 1 - counted,
      shown,
    );
    // A position from a lost history, or one whose successors were trimmed: all that is
    // kept is newer than it, and counted below.
    if (!after.gap) return after.count;
  }
  // Every kept notification is unread: newest first, page by page.
  const kept = await countPages(
    async (before, limit) => {
      const page = await broker.readPage({ tenantKey, streams, before, limit });
      return page.gap ? 'gap' : { entries: page.entries, more: page.hasMore };
    },
    () => MAX_UNREAD_COUNT,
    shown,
  );
  return kept.count;
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
  ledger?: LedgerWriter,
  shownInApp?: () => Promise<ShownInApp | undefined>,
): Promise<{ readUpTo: string; unreadCount: number }> {
  authorizeReadState(principal, assertValidName('userName', args.userName));
  const upTo = parseCursor(args.upTo);
  if (!upTo) throw graphqlError('BAD_USER_INPUT', 'upTo is not a notification id');
  const key = namer.readStateKey(principal.tenant, principal.name);
  // Only with a ledger: where the position was, to tell which notifications it passes.
  const before = ledger && (await broker.readPosition(key));
  // What the count leaves out (the user's preferences), read while the position moves.
  const [marked, shown] = await Promise.all([
    broker.markRead({
      key,
      tenantKey: namer.tenantKey(principal.tenant),
      channel: namer.destination(principal.tenant, 'USER', principal.name).channel,
      upTo,
      payload: READ_STATE_PAYLOAD,
    }),
    shownInApp?.(),
  ]);
  if ('unknownEpoch' in marked) {
    // The epoch is a cursor's, checked to be letters and digits: safe to show.
    throw graphqlError(
      'BAD_USER_INPUT',
      `upTo is from notification history "${marked.unknownEpoch}", which is not the current one (it was lost, or the id was never given); list the notifications again and mark the newest`,
    );
  }
  const { readUpTo } = marked;
  const [unreadCount] = await Promise.all([
    countUnread(broker, namer, principal, readUpTo, shown),
    ledger && marked.advanced ? recordRead(broker, namer, principal, before, readUpTo, ledger) : undefined,
  ]);
  return { readUpTo: formatCursor(readUpTo), unreadCount };
}

/**
 * Records a read event into the ledger of each notification of `principal`'s history
 * that the read position passed, from `from` (exclusive; none or another epoch's: from
 * the start) to `to` (inclusive), at most {@link MAX_READ_EVENTS}. The writer appends
 * only to ledgers that exist. A failed history read records nothing: the ledger is an
 * account, never a condition of the mutation.
 */
async function recordRead(broker: Broker, namer: Namer, principal: Principal, from: Cursor | undefined, to: Cursor, ledger: LedgerWriter): Promise<void> {
  const tenantKey = namer.tenantKey(principal.tenant);
  const streams = namer.subscriberDestinations(principal).map(({ stream }) => stream);
  const ids: string[] = [];
  try {
    if (from !== undefined && from.epoch === to.epoch) {
      const page = await broker.readAfter({ tenantKey, streams, after: from, limit: MAX_READ_EVENTS });
      if (!page.gap) for (const entry of page.entries) if (isRead(entry.id, to)) ids.push(entry.id);
    } else {
      // Newest first, up to and with `to` itself (`before` is exclusive).
      const page = await broker.readPage({ tenantKey, streams, before: { ...to, seq: to.seq + 1 }, limit: MAX_READ_EVENTS });
      if (!page.gap) for (const entry of page.entries) ids.push(entry.id);
    }
  } catch {
    return;
  }
  const at = Date.now();
  for (const id of ids) ledger.record(principal.tenant, id, { type: 'read', at, user: principal.name });
}
