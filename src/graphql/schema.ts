/**
 * Loads `schema.graphql` (the one source of the schema) and binds resolvers to it,
 * with the `Query` fields both servers answer: `viewer` and `notifications`.
 */
import { readFileSync } from 'node:fs';
import type { GraphQLSchema } from 'graphql';
import { createSchema } from 'graphql-yoga';
import type { Principal } from '../auth/index.js';
import type { Broker } from '../broker/types.js';
import type { ChannelNamer } from '../channels/index.js';
import { parseCursor } from '../common/cursor.js';
import { ErrorCode, graphqlError, toGraphQLError } from '../common/errors.js';
import { decodeNotification, type Notification } from '../common/notification.js';
import type { DirectSink, SinkFactory } from '../subscribe/subscriptions.js';

const schemaUrl = new URL('../../schema.graphql', import.meta.url);

/** The SDL of `schema.graphql`, read once. */
export const typeDefs = readFileSync(schemaUrl, 'utf8');

/** What every resolver gets as its context. */
export interface HeraldContext {
  /** The verified principal, if the request carried a token. */
  readonly principal: Principal | undefined;
  /** SSE only: the `Last-Event-ID` header, a resume cursor. */
  readonly lastEventId?: string | undefined;
  /** SSE only: told the id of each notification just before its event is written. */
  readonly onDelivered?: ((id: string) => void) | undefined;
  /**
   * WebSocket only: the fan-out path. The subscription writes into this sink directly
   * instead of yielding events for per-subscriber execution.
   */
  readonly directSink?: SinkFactory<DirectSink> | undefined;
}

/** One resolver map, as `createSchema` takes it. */
export type Resolvers = Exclude<NonNullable<Parameters<typeof createSchema<HeraldContext>>[0]['resolvers']>, readonly unknown[]>;

export interface SchemaOptions {
  /** Reads history for `Query.notifications`. */
  broker: Broker;
  channels: ChannelNamer;
  /** The server's own resolvers (subscription or mutation). */
  resolvers: Resolvers;
}

/** Most notifications one page may ask for. */
export const MAX_PAGE_SIZE = 100;

export function buildSchema({ broker, channels, resolvers }: SchemaOptions): GraphQLSchema {
  const notifications = async (_root: unknown, args: { first?: number | null; after?: string | null }, context: HeraldContext) => {
    const principal = requirePrincipal(context);
    const first = args.first ?? 20;
    if (!Number.isInteger(first) || first < 1 || first > MAX_PAGE_SIZE) {
      throw graphqlError(ErrorCode.BadUserInput, `first must be from 1 to ${MAX_PAGE_SIZE}`);
    }
    const before = args.after == null ? undefined : parseCursor(args.after);
    if (args.after != null && before === undefined) throw graphqlError(ErrorCode.BadUserInput, 'after is not a notification id');
    try {
      const page = await broker.readPage({
        tenantKey: channels.tenantKey(principal.tenant),
        streams: channels.subscriberDestinations(principal).map(({ stream }) => stream),
        before,
        limit: first,
      });
      if (page.gap) throw graphqlError(ErrorCode.HistoryGap, page.reason);
      const nodes = page.entries
        .map((entry) => decodeNotification(entry.id, entry.payload))
        .filter((node): node is Notification => node !== undefined);
      return {
        edges: nodes.map((node) => ({ cursor: node.id, node })),
        pageInfo: { hasNextPage: page.hasMore, endCursor: nodes.at(-1)?.id ?? null },
      };
    } catch (error) {
      throw toGraphQLError(error);
    }
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
      },
      resolvers,
    ],
  });
}

/** The context's principal, or an `UNAUTHENTICATED` error naming what to send. */
export function requirePrincipal(context: HeraldContext): Principal {
  if (!context.principal) {
    throw graphqlError(ErrorCode.Unauthenticated, 'missing token: send "Authorization: Bearer <jwt>"');
  }
  return context.principal;
}
