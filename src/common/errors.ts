/**
 * The one way an error leaves Herald towards a client ({@link createErrorMask}), and the
 * GraphQL error of a failure kind ({@link graphqlError}). Which kinds there are, and
 * what each becomes on every transport, is the table in `failures.ts`. Clients switch
 * on the code, never the message.
 */
import { GraphQLError } from 'graphql';
import { FAILURES, isExpectedFailure, type FailureCode } from './failures.js';
import type { Logger } from './logger.js';
import { escapeControlCharacters } from './unsafe-text.js';

export function graphqlError(code: FailureCode, message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code } });
}

/** What a client is told, in production, in place of an unexpected error's message. */
const UNEXPECTED_ERROR_MESSAGE = 'Unexpected error.';

/**
 * True for a GraphQL error Herald made or graphql-js reported, which a client may see as
 * it is; false for one that wraps an exception (a failure of the core, or a fault).
 */
function isClientFacing(error: unknown): error is GraphQLError {
  return error instanceof GraphQLError && (error.originalError === undefined || error.originalError instanceof GraphQLError);
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
 * The one way an error leaves Herald (GraphQL over HTTP, SSE and WebSocket, WebSocket
 * close reasons and gRPC statuses alike). A failure of an expected kind (`failures.ts`),
 * thrown as it is or wrapped by graphql-js or graphql-ws, becomes a GraphQL error with
 * its code, keeping the wrapper's path and locations. A client-facing error passes with
 * its code. Either way the message is cleaned: unsafe characters escaped, and in
 * production the "Did you mean …?" suggestions cut. Of a client-facing error's
 * extensions only `code` (and Yoga's `http`, which Yoga turns into the status and never
 * sends) stay: a library's extras, such as Yoga's `originalError` of a body that is not
 * JSON, quote the client's bytes. Anything else is a fault of Herald's: it is logged
 * once at `error` and becomes `Unexpected error.` with code `INTERNAL_SERVER_ERROR` in
 * production (its own message, escaped, outside). What the mask returns passes through
 * it again unchanged and unlogged, so a transport may mask what a library has already
 * masked.
 */
export function createErrorMask({ production, logger }: ErrorMaskOptions): MaskError {
  const clean = (message: string): string => escapeControlCharacters(production ? message.replace(SUGGESTION, '') : message);
  return (error) => {
    const failure = error instanceof GraphQLError ? error.originalError : error;
    if (isExpectedFailure(failure)) {
      const wrapper = error instanceof GraphQLError ? error : undefined;
      return new GraphQLError(clean(failure.message), {
        nodes: wrapper?.nodes ?? null,
        source: wrapper?.source ?? null,
        positions: wrapper?.positions ?? null,
        path: wrapper?.path ?? null,
        extensions: { code: failure.code },
      });
    }
    if (isClientFacing(error)) {
      const cleaned = clean(error.message);
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
      extensions: { code: 'INTERNAL_SERVER_ERROR' },
    });
  };
}

/** The failure kind of an error the mask returned (`INTERNAL_SERVER_ERROR` for one it did not make). */
export function failureCodeOf(masked: GraphQLError): FailureCode {
  const code = masked.extensions['code'];
  return typeof code === 'string' && code in FAILURES ? (code as FailureCode) : 'INTERNAL_SERVER_ERROR';
}
