/**
 * Parsed and validated documents, cached by their text. Clients send the same few
 * operations over and over; each connection then shares one AST instead of holding its
 * own, and parses and validates nothing twice.
 *
 * Two bounds keep one client from spending the server's memory or time on documents:
 * - a token limit (`MAX_QUERY_TOKENS`) before anything is built: `parse` stops at the
 *   first token past it, so parsing and validating one document costs a few
 *   milliseconds at most, whoever sends it;
 * - the cache is bounded in bytes, and keeps only the documents of requests that
 *   passed authentication: an anonymous request is prepared, answered and forgotten.
 */
import { GraphQLError, parse, specifiedRules, validate, type DocumentNode, type GraphQLSchema, type ValidationRule } from 'graphql';
import { createLruCache } from '../common/lru.js';

export type Prepared = { readonly document: DocumentNode; readonly errors?: undefined } | { readonly document?: undefined; readonly errors: readonly GraphQLError[] };

export interface DocumentCache {
  /**
   * The parsed, validated document of `query`, or the errors that refused it. Only with
   * `keep` (an authenticated request) does a valid document stay in the cache.
   */
  prepare(query: string, options: { keep: boolean }): Prepared;
  /** What the kept documents hold, in bytes by {@link documentWeight}. */
  readonly bytes: number;
}

export interface DocumentCacheOptions {
  schema: GraphQLSchema;
  /**
   * Herald's rules: run first, and GraphQL's own (`specifiedRules`) only on a document
   * they let through, so their linear checks spare a refused document the quadratic ones
   * (OverlappingFieldsCanBeMerged).
   */
  validationRules: readonly ValidationRule[];
  /**
   * `MAX_QUERY_TOKENS`: most lexical tokens (names, punctuation, values; not comments)
   * in one document. More is a `LIMIT_EXCEEDED` error, found before the document is
   * built.
   */
  maxTokens: number;
  /**
   * Most bytes the cached documents may hold, by {@link documentWeight}: text, AST and
   * the parser's tokens (which every node's location keeps alive).
   * @default 8388608 (8 MiB)
   */
  maxBytes?: number;
  /** Most documents cached, whatever their size. @default 1000 */
  maxEntries?: number;
}

/** The default bound of one document cache: 8 MiB. */
const DEFAULT_DOCUMENT_CACHE_BYTES = 8 * 1024 * 1024;

/**
 * Heap bytes one parsed document may keep alive per token, an upper bound. Each node's
 * `loc` keeps its first and last token, and tokens link to their neighbours, so a
 * document keeps every token it was parsed from; measured with `--expose-gc` over
 * documents of tiny operations, fragments, nested selections, introspection and long
 * strings, it is 250–360 bytes (test/unit/documents.test.ts holds the estimate to it).
 */
const BYTES_PER_TOKEN = 400;
/** Comments are tokens too (kept, and not counted by `maxTokens`): about 90 bytes each, measured. */
const BYTES_PER_COMMENT = 100;
/**
 * An escape in a string (`\n`, `\u00e9`) makes the lexer concatenate, and each piece
 * stays in the value's string: 55–83 bytes an escape, measured.
 */
const BYTES_PER_ESCAPE = 100;
/**
 * A block string's value is rebuilt line by line (dedented and joined), and a line's
 * pieces stay in the value's string like an escape's: about 16 bytes a line, measured.
 */
const BYTES_PER_LINE = 32;

/**
 * An upper bound of the heap that caching `document`, parsed from `query`, keeps: the
 * text (two bytes a character, as a two-byte string would need), every token, one
 * comment per `#`, one escape per `\` and one line per newline (wherever they stand:
 * the estimate stays above).
 */
export function documentWeight(query: string, document: DocumentNode): number {
  let comments = 0;
  let escapes = 0;
  let lines = 0;
  for (let at = 0; at < query.length; at++) {
    const code = query.charCodeAt(at);
    if (code === 0x23) comments++;
    else if (code === 0x5c) escapes++;
    else if (code === 0x0a) lines++;
  }
  return (
    2 * query.length +
    BYTES_PER_TOKEN * (document.tokenCount ?? query.length) +
    BYTES_PER_COMMENT * comments +
    BYTES_PER_ESCAPE * escapes +
    BYTES_PER_LINE * lines
  );
}

/** graphql-js' message when `maxTokens` stops the parser (graphql 16 spells it "more that"). */
const TOO_MANY_TOKENS = /^Syntax Error: Document contains more th(?:at|an) \d+ tokens/;

export function createDocumentCache(options: DocumentCacheOptions): DocumentCache {
  const { schema, maxTokens, validationRules } = options;
  const documents = createLruCache<string, DocumentNode>(options.maxEntries ?? 1000, {
    maxWeight: options.maxBytes ?? DEFAULT_DOCUMENT_CACHE_BYTES,
    weigh: documentWeight,
  });
  return {
    prepare(query, { keep }) {
      const cached = documents.get(query);
      if (cached) return { document: cached };
      let document: DocumentNode;
      try {
        document = parse(query, { maxTokens });
      } catch (error) {
        if (!(error instanceof GraphQLError)) throw error;
        if (TOO_MANY_TOKENS.test(error.message)) {
          return {
            errors: [
              new GraphQLError(`the document has more than ${maxTokens} tokens (MAX_QUERY_TOKENS); send values as variables`, {
                extensions: { code: 'LIMIT_EXCEEDED' },
              }),
            ],
          };
        }
        return { errors: [error] };
      }
      let errors = validate(schema, document, validationRules);
      if (errors.length === 0) errors = validate(schema, document, specifiedRules);
      if (errors.length > 0) return { errors };
      if (keep) documents.set(query, document);
      return { document };
    },
    get bytes() {
      return documents.weight;
    },
  };
}
