/**
 * The React binding (`@herald/client/react`) rendered by react-dom's server renderer:
 * the hooks read the inbox as it is at render time. Re-rendering on a change, and
 * unsubscribing on unmount, run in a real DOM in test/e2e/browser/react.test.ts.
 */
import { createElement, Fragment } from 'react';
import { renderToString } from 'react-dom/server';
import { describe, expect, it } from 'vitest';
import { useNotifications, useUnreadCount, type HeraldInboxSource } from '../../packages/client/src/react.js';
import type { HeraldInbox, HeraldNotification } from '../../packages/client/src/types.js';

const note = (id: string, text: string): HeraldNotification => ({ id, text, timestamp: 1, audience: 'USER' });

function inboxOf(recent: HeraldNotification[], unreadCount: number): HeraldInboxSource {
  const inbox: HeraldInbox = { recent, unreadCount, readUpTo: undefined, markRead: () => Promise.resolve(), onChange: () => () => undefined };
  return { inbox };
}

function Bell({ client }: { client: HeraldInboxSource }) {
  const unread = useUnreadCount(client);
  const notifications = useNotifications(client);
  return createElement(Fragment, null, createElement('b', null, String(unread)), ...notifications.map((n) => createElement('i', { key: n.id }, n.text)));
}

describe('@herald/client/react', () => {
  it('useUnreadCount and useNotifications render what the inbox holds', () => {
    const client = inboxOf([note('e_2-0', 'second'), note('e_1-0', 'first')], 2);
    expect(renderToString(createElement(Bell, { client }))).toBe('<b>2</b><i>second</i><i>first</i>');
  });

  it('an empty inbox renders zero and no items', () => {
    expect(renderToString(createElement(Bell, { client: inboxOf([], 0) }))).toBe('<b>0</b>');
  });
});
