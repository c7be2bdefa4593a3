/**
 * Stable `extensions.code` values of Herald's GraphQL errors, the mapping of the typed
 * errors the core throws onto them, and the one function every transport passes an
 * error through before a client sees it ({@link createErrorMask}). Clients switch on the
 * code, never the message.
 */
import { GraphQLError } from 'graphql';
import { AuthenticationError, ForbiddenError } from '../auth/index.js';
import { InvalidNameError } from '../channels/index.js';
import { BrokerUnavailableError, OutcomeUnknownError } from '../broker/types.js';
import { InvalidInputError, LimitExceededError } from './failures.js';
import type { Logger } from './logger.js';

export const ErrorCode = {
  Unauthenticated: 'UNAUTHENTICATED',
  Forbidden: 'FORBIDDEN',
  /** The request itself is malformed (not JSON, wrong types) or sent the wrong way. */
  BadRequest: 'BAD_REQUEST',
  BadUserInput: 'BAD_USER_INPUT',
  LimitExceeded: 'LIMIT_EXCEEDED',
  ServiceUnavailable: 'SERVICE_UNAVAILABLE',
  OutcomeUnknown: 'OUTCOME_UNKNOWN',
  WrongServer: 'WRONG_SERVER',
  HistoryGap: 'HISTORY_GAP',
  /** A fault of Herald's; its message is hidden in production. */
  InternalServerError: 'INTERNAL_SERVER_ERROR',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export function graphqlError(code: ErrorCode, message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code } });
}

/** What a client is told, in production, in place of an unexpected error's message. */
export const UNEXPECTED_ERROR_MESSAGE = 'Unexpected error.';

/**
 * True for a GraphQL error Herald made or graphql-js reported, which a client may see as
 * it is; false for one that wraps an unexpected exception (a fault of Herald's).
 */
export function isClientFacing(error: unknown): error is GraphQLError {
  return error instanceof GraphQLError && (error.originalError === undefined || error.originalError instanceof GraphQLError);
}

/**
 * Turns an error the core threw into a client-facing GraphQL error. Anything not known
 * here is rethrown, for the server to mask as an unexpected error.
 */
export function toGraphQLError(error: unknown): GraphQLError {
  if (error instanceof GraphQLError) return error;
  if (error instanceof AuthenticationError) return graphqlError(ErrorCode.Unauthenticated, error.message);
  if (error instanceof ForbiddenError) return graphqlError(ErrorCode.Forbidden, error.message);
  if (error instanceof InvalidNameError || error instanceof InvalidInputError) return graphqlError(ErrorCode.BadUserInput, error.message);
  if (error instanceof LimitExceededError) return graphqlError(ErrorCode.LimitExceeded, error.message);
  if (error instanceof BrokerUnavailableError) return graphqlError(ErrorCode.ServiceUnavailable, error.message);
  if (error instanceof OutcomeUnknownError) return graphqlError(ErrorCode.OutcomeUnknown, error.message);
  throw error;
}

/**
 * Characters a message must not carry to a client or a log: C0 and C1 controls (a
 * forged line, a terminal escape) and the bidirectional controls (U+061C, U+200E/F,
 * U+202A–U+202E, U+2066–U+2069) that make text read differently from what it holds,
 * and the line and paragraph separators U+2028/U+2029.
 */
const UNSAFE_CHARACTERS = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;

/** `text` with every unsafe character written as a `\uXXXX` escape. */
export function escapeControlCharacters(text: string): string {
  return text.replace(UNSAFE_CHARACTERS, (character) => `\\u${character.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * graphql-js' "Did you mean …?" hints: in production they would name fields, types and
 * enum values to a client that has no introspection.
 */
const SUGGESTION = /\s*Did you mean [^?]*\?/g;

export interface ErrorMaskOptions {
  /** Hides unexpected errors' messages and graphql-js' suggestions. */
  production: boolean;
  /** Where an unexpected error is logged, once, at `error`. */
  logger: Logger;
}

/** Makes any error fit for a client; see {@link createErrorMask}. */
export type MaskError = (error: unknown) => GraphQLError;

/**
 * The one way an error leaves Herald over GraphQL (HTTP, SSE and WebSocket alike). A
 * client-facing error passes with its code, its message cleaned: unsafe characters
 * escaped, and in production the "Did you mean …?" suggestions cut. Of its extensions
 * only `code` (and Yoga's `http`, which Yoga turns into the status and never sends)
 * stay: a library's extras, such as Yoga's `originalError` of a body that is not JSON,
 * quote the client's bytes. Anything else is a
 * fault of Herald's: it is logged once at `error` and becomes `Unexpected error.` with
 * code `INTERNAL_SERVER_ERROR` in production (its own message, escaped, outside). What
 * the mask returns passes through it again unchanged and unlogged, so a transport may
 * mask what a library has already masked.
 */
export function createErrorMask({ production, logger }: ErrorMaskOptions): MaskError {
  return (error) => {
    if (isClientFacing(error)) {
      const cleaned = escapeControlCharacters(production ? error.message.replace(SUGGESTION, '') : error.message);
      const { code, http } = error.extensions;
      const extensions = { ...(code === undefined ? {} : { code }), ...(http === undefined ? {} : { http }) };
      if (cleaned === error.message && Object.keys(extensions).length === Object.keys(error.extensions).length) return error;
      return new GraphQLError(cleaned, {
        nodes: error.nodes ?? null,
        source: error.source ?? null,
        positions: error.positions ?? null,
        path: error.path ?? null,
        originalError: error.originalError ?? null,
        extensions,
      });
    }
    const original = error instanceof GraphQLError && error.originalError ? error.originalError : error;
    logger.error(`herald: unexpected error: ${original instanceof Error ? (original.stack ?? original.message) : String(original)}`);
    const message = production ? UNEXPECTED_ERROR_MESSAGE : escapeControlCharacters(original instanceof Error ? original.message : String(original));
    return new GraphQLError(message, {
      path: error instanceof GraphQLError ? (error.path ?? null) : null,
      extensions: { code: ErrorCode.InternalServerError },
    });
  };
}
