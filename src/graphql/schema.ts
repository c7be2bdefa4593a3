/**
 * Loads `schema.graphql` (the one source of the schema) and binds resolvers to it.
 */
import { readFileSync } from 'node:fs';
import type { GraphQLSchema } from 'graphql';
import { createSchema } from 'graphql-yoga';
import type { Principal } from '../auth/index.js';
import { ErrorCode, graphqlError } from '../common/errors.js';

const schemaUrl = new URL('../../schema.graphql', import.meta.url);

/** The SDL of `schema.graphql`, read once. */
export const typeDefs = readFileSync(schemaUrl, 'utf8');

/** What every resolver gets as its context: the verified principal, if any. */
export interface HeraldContext {
  readonly principal: Principal | undefined;
}

/** One resolver map, as `createSchema` takes it. */
export type Resolvers = Exclude<NonNullable<Parameters<typeof createSchema<HeraldContext>>[0]['resolvers']>, readonly unknown[]>;

/** Builds the executable schema with `resolvers` plus the shared `Query.viewer`. */
export function buildSchema(resolvers: Resolvers): GraphQLSchema {
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
