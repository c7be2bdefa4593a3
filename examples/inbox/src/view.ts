/**
 * Draws the inbox from its state. Text from notifications only ever goes through
 * `textContent`: a notification cannot inject markup. Nor can it make itself read
 * differently from what it holds: its bidirectional controls are shown as `\u` escapes
 * (`\u202Egnp.exe` would read `exe.png`), and it is isolated (`dir="auto"`, `<bdi>`) so
 * right-to-left text reorders nothing around it.
 */
import { escapeBidiControls } from '../../../src/common/unsafe-text.js';
import type { HeraldNotification } from '@herald/client';

export type ConnectionState = 'connecting' | 'live' | 'reconnecting' | 'offline';

export interface ViewState {
  readonly userName: string | undefined;
  readonly notifications: readonly HeraldNotification[];
  readonly isRead: (id: string) => boolean;
  readonly unreadCount: number;
  readonly connection: ConnectionState;
  readonly notice: string | undefined;
  /** Ids that arrived live since the last draw, to highlight once. */
  readonly fresh: ReadonlySet<string>;
}

const STATUS_TEXT: Record<ConnectionState, string> = {
  connecting: 'Connecting…',
  live: 'Live',
  reconnecting: 'Reconnecting…',
  offline: 'Offline',
};

function element<T extends HTMLElement>(testId: string): T {
  const found = document.querySelector<T>(`[data-testid="${testId}"]`);
  if (!found) throw new Error(`the page has no ${testId}`);
  return found;
}

export interface View {
  draw(state: ViewState): void;
  onMarkAll(handler: () => void): void;
  onMarkUpTo(handler: (id: string) => void): void;
}

export function createView(): View {
  const badge = element('badge');
  const who = element('who');
  const status = element('status');
  const markAll = element<HTMLButtonElement>('mark-all');
  const list = element<HTMLOListElement>('list');
  const empty = element('empty');
  const notice = element('notice');
  let markUpTo: (id: string) => void = () => undefined;

  list.addEventListener('click', (event) => {
    const item = (event.target as HTMLElement).closest<HTMLElement>('[data-id]');
    if (item?.dataset['id'] && item.dataset['read'] === 'false') markUpTo(item.dataset['id']);
  });

  return {
    onMarkAll: (handler) => markAll.addEventListener('click', handler),
    onMarkUpTo: (handler) => {
      markUpTo = handler;
    },
    draw(state) {
      badge.hidden = state.unreadCount === 0;
      badge.textContent = state.unreadCount >= 100 ? '99+' : String(state.unreadCount);
      badge.setAttribute('aria-label', `${state.unreadCount} unread notifications`);
      who.textContent = state.userName ? `Signed in as ${state.userName}` : 'Signing in…';
      status.dataset['state'] = state.connection;
      status.textContent = STATUS_TEXT[state.connection];
      markAll.disabled = state.unreadCount === 0 || state.notifications.length === 0;
      notice.hidden = state.notice === undefined;
      notice.textContent = state.notice ?? '';
      empty.hidden = state.notifications.length > 0;
      list.replaceChildren(...state.notifications.map((notification) => drawItem(notification, state.isRead(notification.id), state.fresh.has(notification.id))));
    },
  };
}

function drawItem(notification: HeraldNotification, read: boolean, fresh: boolean): HTMLLIElement {
  const item = document.createElement('li');
  item.className = fresh ? 'item item--new' : 'item';
  item.dataset['id'] = notification.id;
  item.dataset['read'] = String(read);
  item.dataset['testid'] = 'notification';
  item.title = read ? '' : 'Mark read up to here';
  const dot = document.createElement('span');
  dot.className = 'item__dot';
  const body = document.createElement('div');
  const text = document.createElement('p');
  text.className = 'item__text';
  text.dir = 'auto';
  text.textContent = escapeBidiControls(notification.text);
  const meta = document.createElement('p');
  meta.className = 'item__meta';
  const chip = document.createElement('span');
  chip.className = 'item__chip';
  chip.textContent = notification.audience;
  const from = document.createElement('span');
  const sender = document.createElement('bdi');
  sender.textContent = escapeBidiControls(notification.sender ?? '');
  from.append('from ', sender);
  const when = document.createElement('time');
  when.dateTime = new Date(notification.timestamp * 1000).toISOString();
  when.textContent = relativeTime(notification.timestamp);
  meta.append(chip, from, when);
  body.append(text, meta);
  item.append(dot, body);
  return item;
}

function relativeTime(unixSeconds: number): string {
  const seconds = Math.max(0, Math.round(Date.now() / 1000 - unixSeconds));
  if (seconds < 45) return 'just now';
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86_400) return `${Math.round(seconds / 3600)} h ago`;
  return new Date(unixSeconds * 1000).toLocaleDateString(undefined, { month: 'short', day: 'numeric' });
}
