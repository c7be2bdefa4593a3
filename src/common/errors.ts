/**
 * Stable `extensions.code` values of Herald's GraphQL errors, and the mapping of the
 * typed errors the core throws onto them. Clients switch on the code, never the message.
 */
import { GraphQLError } from 'graphql';
import { AuthenticationError, ForbiddenError } from '../auth/index.js';
import { InvalidNameError } from '../channels/index.js';
import { BrokerUnavailableError, OutcomeUnknownError } from '../broker/types.js';
import { InvalidInputError, LimitExceededError } from './failures.js';

export const ErrorCode = {
  Unauthenticated: 'UNAUTHENTICATED',
  Forbidden: 'FORBIDDEN',
  BadUserInput: 'BAD_USER_INPUT',
  LimitExceeded: 'LIMIT_EXCEEDED',
  ServiceUnavailable: 'SERVICE_UNAVAILABLE',
  OutcomeUnknown: 'OUTCOME_UNKNOWN',
  WrongServer: 'WRONG_SERVER',
  HistoryGap: 'HISTORY_GAP',
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
