/**
 * `@herald/client/react`: the inbox store as React state. Each hook subscribes with
 * `useSyncExternalStore` to `client.inbox.onChange`, so a component re-renders when the
 * list or the count changes and never tears during a concurrent render; unmounting
 * unsubscribes. Create the client once (outside the component, or in a `useState`
 * initialiser) and `close()` it when the app is done with it: the hooks never do.
 *
 * ```tsx
 * const herald = createHeraldClient({ url, token: getToken });
 * function Bell() {
 *   const unread = useUnreadCount(herald);
 *   return <span className="badge">{unread}</span>;
 * }
 * ```
 */
import { useCallback, useSyncExternalStore } from 'react';
import type { HeraldClient, HeraldNotification } from './types.js';

/** The part of a client the hooks read: its inbox. */
export type HeraldInboxSource = Pick<HeraldClient, 'inbox'>;

function useInbox<T>(client: HeraldInboxSource, read: (inbox: HeraldClient['inbox']) => T): T {
  const subscribe = useCallback((onStoreChange: () => void) => client.inbox.onChange(onStoreChange), [client]);
  const snapshot = (): T => read(client.inbox);
  // Server rendering sees what the client holds (nothing until it has connected).
  return useSyncExternalStore(subscribe, snapshot, snapshot);
}

/** The most recent notifications, newest first (`client.inbox.recent`): a new array only when it changes. */
export function useNotifications(client: HeraldInboxSource): readonly HeraldNotification[] {
  return useInbox(client, (inbox) => inbox.recent);
}

/** How many notifications are unread (`client.inbox.unreadCount`): the bell's badge. */
export function useUnreadCount(client: HeraldInboxSource): number {
  return useInbox(client, (inbox) => inbox.unreadCount);
}
