/**
 * Herald's example inbox: the bell with the unread count and the live list, newest
 * first — a page built on `@herald/client`, as an app would be. The package does the
 * work: it resumes after the last notification shown on every reconnect and after a
 * reload, drops repeats, reconnects for ever, shares one connection among this user's
 * tabs, loads the recent list and keeps the read state in step with the user's other
 * devices. The page only draws what the client holds.
 *
 * The token comes from the URL's fragment (`#token=…`, which never reaches a server) and
 * is kept for the tab's session.
 */
import { createHeraldClient, type HeraldStatus } from '@herald/client';
import { isAtOrBefore } from './ids.js';
import { createView, type ConnectionState } from './view.js';
import { createPreferencesPanel } from './preferences.js';

const view = createView();
const token = new URLSearchParams(location.hash.slice(1)).get('token') ?? sessionStorage.getItem('herald-token');

if (!token) {
  view.draw({
    userName: undefined,
    notifications: [],
    isRead: () => false,
    unreadCount: 0,
    connection: 'offline',
    notice: 'No token: open this page with #token=<a user token> (npm start prints the link).',
    fresh: new Set(),
  });
} else {
  sessionStorage.setItem('herald-token', token);
  history.replaceState(null, '', location.pathname);
  start(token);
}

function start(token: string): void {
  const client = createHeraldClient({ url: new URL('/graphql', location.href).toString().replace(/^http/, 'ws'), token });
  const userName = subjectOf(token);
  let connection: ConnectionState = 'connecting';
  let notice: string | undefined;
  /** Ids that arrived live since the last draw, to highlight once. */
  let fresh = new Set<string>();
  let drawing = false;

  const draw = (): void => {
    const { inbox } = client;
    view.draw({ userName, notifications: inbox.recent, isRead: (id) => isAtOrBefore(id, inbox.readUpTo), unreadCount: inbox.unreadCount, connection, notice, fresh });
    fresh = new Set();
  };
  // One draw for everything that changed in one turn (a notification both joins the list and is announced).
  const redraw = (): void => {
    if (drawing) return;
    drawing = true;
    queueMicrotask(() => {
      drawing = false;
      draw();
    });
  };

  let wasLive = false;
  client.onStatus((status: HeraldStatus) => {
    if (status === 'live') {
      wasLive = true;
      notice = undefined;
    }
    connection = status === 'connecting' && wasLive ? 'reconnecting' : status;
    redraw();
  });
  const preferences = createPreferencesPanel({
    url: new URL('/graphql', location.href).toString(),
    token,
    onError: (message) => {
      notice = message;
      redraw();
    },
  });
  client.onNotification((notification) => {
    fresh.add(notification.id);
    // The client does not select `category`: the panel reads the list's categories again.
    preferences.refresh();
    redraw();
  });
  client.inbox.onChange(redraw);
  client.onGap(() => {
    notice = 'Some notifications were missed while away and are no longer kept.';
    redraw();
  });
  client.onError((error) => {
    notice = `${error.message} (${error.code})`;
    redraw();
  });

  const markRead = (id?: string): void => {
    client.inbox.markRead(id).catch((error: unknown) => {
      notice = error instanceof Error ? error.message : String(error);
      redraw();
    });
  };
  view.onMarkAll(() => markRead());
  view.onMarkUpTo(markRead);
  // Relative times ("3 min ago") stay true.
  setInterval(draw, 30_000);
  preferences.refresh();
  draw();
}

/** The token's `sub` (not verified: the server does that; this only names who is signed in). */
function subjectOf(token: string): string | undefined {
  try {
    const payload: unknown = JSON.parse(atob((token.split('.')[1] ?? '').replace(/-/g, '+').replace(/_/g, '/')));
    return typeof payload === 'object' && payload !== null && 'sub' in payload && typeof payload.sub === 'string' ? payload.sub : undefined;
  } catch {
    return undefined;
  }
}
