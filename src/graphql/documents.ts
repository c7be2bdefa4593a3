/**
 * Parsed and validated documents, cached by their text. Clients send the same few
 * operations over and over; each connection then shares one AST instead of holding its
 * own, and parses and validates nothing twice. Bounded: the least recently used text
 * is dropped first.
 */
import { parse, specifiedRules, validate, type DocumentNode, type GraphQLError, type GraphQLSchema, type ValidationRule } from 'graphql';
import { createLruCache } from '../common/lru.js';

export type Prepared = { readonly document: DocumentNode; readonly errors?: undefined } | { readonly document?: undefined; readonly errors: readonly GraphQLError[] };

export interface DocumentCache {
  /** The parsed, validated document of `query`, or the errors that refused it. */
  prepare(query: string): Prepared;
}

export function createDocumentCache(schema: GraphQLSchema, extraRules: readonly ValidationRule[], maxEntries = 1000): DocumentCache {
  const rules = [...specifiedRules, ...extraRules];
  const documents = createLruCache<string, DocumentNode>(maxEntries);
  return {
    prepare(query) {
      const cached = documents.get(query);
      if (cached) return { document: cached };
      let document: DocumentNode;
      try {
        document = parse(query);
      } catch (error) {
        return { errors: [error as GraphQLError] };
      }
      const errors = validate(schema, document, rules);
      if (errors.length > 0) return { errors };
      documents.set(query, document);
      return { document };
    },
  };
}
