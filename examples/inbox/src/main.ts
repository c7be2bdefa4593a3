/**
 * Herald's example inbox: the bell with the unread count and the live list, newest
 * first. The list is loaded over HTTP before the socket is up; the subscription then
 * resumes after the newest id shown, so nothing sent in between is lost, and so does
 * every reconnect. A `HISTORY_GAP` (the missed notifications are no longer kept) reloads
 * the list. Read state follows the user's other devices through `ReadStateChange`.
 *
 * The token comes from the URL's fragment (`#token=…`, which never reaches a server) and
 * is kept for the tab's session.
 */
import { ApiError, createApi, type InboxEvent, type InboxNotification } from './api.js';
import { isAtOrBefore } from './ids.js';
import { createView, type ConnectionState } from './view.js';

/** Notifications the list shows. */
const LIST_SIZE = 50;
/** Reconnect back-off: doubles from the first to the last, with jitter. */
const RECONNECT_MS = { first: 250, last: 5000 } as const;

const view = createView();
const token = new URLSearchParams(location.hash.slice(1)).get('token') ?? sessionStorage.getItem('herald-token');

let userName: string | undefined;
let notifications: InboxNotification[] = [];
const shown = new Set<string>();
let fresh = new Set<string>();
let readUpTo: string | null = null;
let unreadCount = 0;
let connection: ConnectionState = 'connecting';
let notice: string | undefined;
/** The newest id shown: where the subscription resumes. */
let lastId: string | undefined;
let attempts = 0;

const draw = (): void => {
  view.draw({ userName, notifications, isRead: (id) => isAtOrBefore(id, readUpTo), unreadCount, connection, notice, fresh });
  fresh = new Set();
};

if (!token) {
  connection = 'offline';
  notice = 'No token: open this page with #token=<a user token> (npm start prints the link).';
  draw();
} else {
  sessionStorage.setItem('herald-token', token);
  history.replaceState(null, '', location.pathname);
  void start(token);
}

async function start(token: string): Promise<void> {
  const api = createApi(token, new URL(location.href));

  const load = async (): Promise<void> => {
    const page = await api.load(LIST_SIZE);
    userName = page.userName;
    notifications = [...page.notifications];
    shown.clear();
    for (const notification of notifications) shown.add(notification.id);
    readUpTo = page.readUpTo;
    unreadCount = page.unreadCount;
    lastId = notifications[0]?.id ?? lastId;
    draw();
  };

  const onEvent = (event: InboxEvent): void => {
    if (event.__typename === 'ReadStateChange') {
      if (!isAtOrBefore(event.readUpTo, readUpTo)) readUpTo = event.readUpTo;
      // The count beyond the list is the server's to say.
      void api.unread().then((state) => {
        unreadCount = state.unreadCount;
        readUpTo = state.readUpTo;
        draw();
      }, showError);
      draw();
      return;
    }
    const { __typename: _kind, ...notification } = event;
    lastId = notification.id;
    if (shown.has(notification.id)) return;
    shown.add(notification.id);
    fresh.add(notification.id);
    notifications = [notification, ...notifications].slice(0, LIST_SIZE);
    if (!isAtOrBefore(notification.id, readUpTo)) unreadCount += 1;
    draw();
  };

  const connect = (): void => {
    if (!userName) return;
    api.listen({
      userName,
      since: lastId,
      onConnected: () => {
        attempts = 0;
        connection = 'live';
        notice = undefined;
        draw();
      },
      onEvent,
      onError: (error) => {
        if (error.code !== 'HISTORY_GAP') return showError(error);
        // Some missed notifications are gone: show what is kept. Live ones follow.
        notice = 'Some older notifications are no longer kept; the list was reloaded.';
        void load().catch(showError);
      },
      onDrop: (reason) => {
        connection = 'reconnecting';
        draw();
        const wait = Math.min(RECONNECT_MS.last, RECONNECT_MS.first * 2 ** attempts++) * (0.75 + Math.random() / 2);
        console.info(`inbox: connection lost (${reason}); reconnecting in ${Math.round(wait)} ms`);
        setTimeout(connect, wait);
      },
    });
  };

  view.onMarkAll(() => {
    const newest = notifications[0]?.id;
    if (newest) markRead(newest);
  });
  view.onMarkUpTo(markRead);

  function markRead(upTo: string): void {
    if (!userName) return;
    // Shown at once; the server's answer (and every other device's) follows.
    if (!isAtOrBefore(upTo, readUpTo)) readUpTo = upTo;
    unreadCount = notifications.filter((notification) => !isAtOrBefore(notification.id, readUpTo)).length;
    draw();
    api.markRead(userName, upTo).then((state) => {
      readUpTo = state.readUpTo;
      unreadCount = state.unreadCount;
      draw();
    }, showError);
  }

  function showError(error: unknown): void {
    notice = error instanceof ApiError ? `${error.message}${error.code ? ` (${error.code})` : ''}` : String(error);
    draw();
  }

  try {
    await load();
  } catch (error) {
    connection = 'offline';
    showError(error);
    return;
  }
  connect();
  // Relative times ("3 min ago") stay true.
  setInterval(draw, 30_000);
}
