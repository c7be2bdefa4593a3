/**
 * The page of react.test.ts: a bell drawn with `@herald/client/react` over an inbox the
 * test drives (`window.heraldInbox`), rendered by react-dom into a real DOM.
 */
import { createElement, Fragment } from 'react';
import { createRoot } from 'react-dom/client';
import { useNotifications, useUnreadCount, type HeraldInboxSource } from '../../../../packages/client/src/react.js';
import type { HeraldInbox, HeraldNotification } from '../../../../packages/client/src/types.js';

export interface DrivenInbox {
  /** A notification arrives: newest first, unread. */
  add(text: string): void;
  markAllRead(): void;
  unmount(): void;
  /** Listeners subscribed to `onChange` now. */
  listeners(): number;
  /** Renders of the bell so far. */
  renders(): number;
}

let recent: HeraldNotification[] = [];
let unreadCount = 0;
let renders = 0;
const listeners = new Set<() => void>();
const changed = (): void => {
  for (const listener of [...listeners]) listener();
};
const inbox: HeraldInbox = {
  get recent() {
    return recent;
  },
  get unreadCount() {
    return unreadCount;
  },
  readUpTo: undefined,
  markRead: () => Promise.resolve(),
  onChange(listener) {
    listeners.add(listener);
    return () => void listeners.delete(listener);
  },
};
const client: HeraldInboxSource = { inbox };

function Bell() {
  renders += 1;
  const unread = useUnreadCount(client);
  const notifications = useNotifications(client);
  return createElement(
    Fragment,
    null,
    createElement('span', { id: 'badge' }, String(unread)),
    createElement('ol', { id: 'list' }, ...notifications.map((notification) => createElement('li', { key: notification.id }, notification.text))),
  );
}

// Typed by hand: the repository's test config has Node's types, not the DOM's.
const page = globalThis as unknown as { document: { getElementById(id: string): unknown }; heraldInbox?: DrivenInbox };
const root = createRoot(page.document.getElementById('root') as Parameters<typeof createRoot>[0]);
root.render(createElement(Bell));

page.heraldInbox = {
  add(text) {
    recent = [{ id: `e_${recent.length + 1}-0`, text, timestamp: 1, audience: 'USER' }, ...recent];
    unreadCount += 1;
    changed();
  },
  markAllRead() {
    unreadCount = 0;
    changed();
  },
  unmount: () => root.unmount(),
  listeners: () => listeners.size,
  renders: () => renders,
};
