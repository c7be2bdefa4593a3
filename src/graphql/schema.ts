/**
 * Loads `schema.graphql` (the one source of the schema) and binds resolvers to it,
 * with the `Query` fields both servers answer (`viewer` and `notifications`) and the
 * `Subscription` field's `resolve`.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { GraphQLSchema } from 'graphql';
import { createSchema } from 'graphql-yoga';
import type { Principal } from '../auth/index.js';
import type { Broker, BrokerMessage } from '../broker/types.js';
import type { Namer } from '../names/index.js';
import { formatCursor, parseCursor } from '../common/cursor.js';
import { graphqlError } from '../common/errors.js';
import type { Failure } from '../common/failures.js';
import { decodeNotification, type SubscriptionItem, type Notification } from '../common/notification.js';
import { countUnread, isRead, markRead } from './read-state.js';
import type { LedgerWriter } from '../ledger/events.js';
import { showsInApp } from '../preferences/decide.js';
import type { CategorySettings, UserPreferences } from '../preferences/preferences.js';

const schemaPath = fileURLToPath(new URL('../../schema.graphql', import.meta.url));

/** The SDL of `schema.graphql`, read once. */
export const typeDefs = readFileSync(schemaPath, 'utf8');

/**
 * What every resolver gets as its context: who is asking, and on a WebSocket the
 * connection's token. The operation pipeline opens subscriptions on the core; nothing
 * else travels back through here.
 */
export interface HeraldContext {
  /** The verified principal, if the request carried a token. */
  readonly principal: Principal | undefined;
  /**
   * The connection whose token `refreshToken` replaces: a WebSocket's. Absent on every
   * other transport, whose requests each carry their own token.
   */
  readonly tokenHolder?: TokenHolder | undefined;
}

/**
 * A connection that holds one token for its life and can take a new one without
 * closing (the WebSocket transport's connection implements it). Defined here so the
 * `refreshToken` resolver reaches it without knowing any transport.
 */
export interface TokenHolder {
  /** The principal of the token it holds now; undefined before `connection_init` is accepted. */
  readonly principal: Principal | undefined;
  /**
   * Holds `principal` from now on, in place of the old one: its expiry is the
   * connection's close deadline. The caller has verified it and checked it is the same
   * user's. Every subscription stays open.
   */
  tokenRefreshed(principal: Principal): void;
  /** A refresh was refused for `failure`; the connection keeps its token and its deadline. */
  tokenRefreshRefused(failure: Failure): void;
}

/**
 * The arguments of a `Subscription` field, as graphql-js coerces them and hands them to
 * the operation pipeline's `subscribeFieldResolver` (`operation.ts`).
 */
export interface SubscriptionArguments {
  readonly userName?: unknown;
  readonly since?: unknown;
}

/** One resolver map, as `createSchema` takes it. */
export type Resolvers = Exclude<NonNullable<Parameters<typeof createSchema<HeraldContext>>[0]['resolvers']>, readonly unknown[]>;

export interface SchemaOptions {
  /** Reads history for `Query.notifications`. */
  broker: Broker;
  namer: Namer;
  /** The server's own resolvers (the publish server's mutations). */
  resolvers?: Resolvers;
  /** Where `markNotificationsRead` records read events. @default none */
  ledger?: LedgerWriter | undefined;
  /**
   * The viewer's preferences and the tenant's defaults: the inbox list leaves out what
   * the viewer turned off `IN_APP`. @default none: everything is listed
   */
  preferencesOf?: ((principal: Principal) => Promise<{ readonly preferences: UserPreferences; readonly defaults: CategorySettings }>) | undefined;
}

/** Most notifications one page may ask for. */
const MAX_PAGE_SIZE = 100;

/** A kept entry as the list shows it: decoded and `shown` (an unreadable one never is). */
const shownEntry =
  (shown: (notification: Notification) => boolean) =>
  (entry: BrokerMessage): boolean => {
    const notification = decodeNotification(entry.id, entry.payload);
    return notification !== undefined && shown(notification);
  };

export function buildSchema({ broker, namer, resolvers, ledger, preferencesOf }: SchemaOptions): GraphQLSchema {
  /** Whether `principal` sees a notification in the app, by their preferences; undefined: every one (no store). */
  const shownInAppTo = async (principal: Principal): Promise<((notification: Notification) => boolean) | undefined> => {
    if (preferencesOf === undefined) return undefined;
    const { preferences, defaults } = await preferencesOf(principal);
    return (notification) => showsInApp(preferences.categories, defaults, notification);
  };
  const notifications = async (_root: unknown, args: { first?: number | null; after?: string | null }, context: HeraldContext) => {
    const principal = requirePrincipal(context);
    const first = args.first ?? 20;
    if (!Number.isInteger(first) || first < 1 || first > MAX_PAGE_SIZE) {
      throw graphqlError('BAD_USER_INPUT', `first must be from 1 to ${MAX_PAGE_SIZE}`);
    }
    const before = args.after == null ? undefined : parseCursor(args.after);
    if (args.after != null && before === undefined) throw graphqlError('BAD_USER_INPUT', 'after is not a notification id');
    const page = await broker.readPage({
      tenantKey: namer.tenantKey(principal.tenant),
      streams: namer.subscriberDestinations(principal).map(({ stream }) => stream),
      before,
      limit: first,
    });
    if (page.gap) throw graphqlError('HISTORY_GAP', page.reason);
    const shown = await shownInAppTo(principal);
    // A page may hold fewer than `first` when some are hidden: `hasNextPage` still says whether more are kept.
    const nodes = page.entries
      .map((entry) => decodeNotification(entry.id, entry.payload))
      .filter((node): node is Notification => node !== undefined && (shown === undefined || shown(node)));
    const readUpTo = await broker.readPosition(namer.readStateKey(principal.tenant, principal.name));
    return {
      edges: nodes.map((node) => ({ cursor: node.id, node, read: isRead(node.id, readUpTo) })),
      // The page's last entry, shown or not: a page whose every entry is hidden still pages on.
      pageInfo: { hasNextPage: page.hasMore, endCursor: page.entries.at(-1)?.id ?? null },
      // Counted only when asked for: it is one more history read (more when muted entries fill a page).
      // The first page's count is as of that page (nothing stored since its newest entry),
      // so a client adding the live notifications it receives never counts one twice.
      unreadCount: () => {
        const asOf = before === undefined ? parseCursor(page.entries[0]?.id) : undefined;
        // A first page with nothing on it: nothing was kept when it was read.
        if (before === undefined && asOf === undefined) return 0;
        return countUnread(broker, namer, principal, readUpTo, shown && shownEntry(shown), asOf);
      },
      readUpTo: readUpTo ? formatCursor(readUpTo) : null,
    };
  };
  return createSchema<HeraldContext>({
    typeDefs,
    resolvers: [
      {
        Query: {
          viewer: (_root: unknown, _args: unknown, context: HeraldContext) => {
            const principal = requirePrincipal(context);
            return {
              name: principal.name,
              tenant: principal.tenant,
              stores: principal.stores,
              scopes: [...principal.scopes],
              expiresAt: Math.floor(principal.expiresAt / 1000),
            };
          },
          notifications,
        },
        // Both servers' schema has it; the publish server's validation refuses it as
        // WRONG_SERVER: it is a user's action, answered where the user's socket is.
        Mutation: {
          markNotificationsRead: (_root: unknown, args: { userName?: unknown; upTo?: unknown }, context: HeraldContext) => {
            const principal = requirePrincipal(context);
            const shownInApp = async () => {
              const shown = await shownInAppTo(principal);
              return shown && shownEntry(shown);
            };
            return markRead(broker, namer, principal, { userName: args.userName, upTo: args.upTo }, ledger, shownInApp);
          },
        },
        // A resolver only for `critical`: a notification carries it only when true.
        Notification: {
          critical: (notification: Notification) => notification.critical === true,
        },
        InboxEvent: {
          __resolveType: (item: SubscriptionItem) => ('readUpTo' in item ? 'ReadStateChange' : 'Notification'),
        },
      },
      {
        // No `subscribe` here: each transport opens the subscription on the core itself,
        // through graphql-js' `subscribeFieldResolver`, which gives it the coerced
        // arguments. What stays is `resolve`, for graphql-ws' and GraphQL's validation
        // and for the fan-out plan, which executes the selection set on each item.
        Subscription: {
          onNotificationReceived: { resolve: resolveItem },
          onInboxEvent: { resolve: resolveItem },
        },
      },
      ...(resolvers ? [resolvers] : []),
    ],
  });
}

/**
 * A subscription's item as its field's value: a gap is a `HISTORY_GAP` error. Exported so
 * the fan-out's direct rendering can tell a field that shows a notification as it is.
 */
export function resolveItem(item: SubscriptionItem): SubscriptionItem {
  if ('gap' in item) throw graphqlError('HISTORY_GAP', item.gap);
  return item;
}

/** The context's principal, or an `UNAUTHENTICATED` error naming what to send. */
export function requirePrincipal(context: { readonly principal?: Principal | undefined }): Principal {
  if (!context.principal) {
    throw graphqlError('UNAUTHENTICATED', 'missing token: send "Authorization: Bearer <jwt>"');
  }
  return context.principal;
}
