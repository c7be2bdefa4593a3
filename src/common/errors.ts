/**
 * Stable `extensions.code` values of Herald's GraphQL errors, and the mapping of the
 * typed errors the core throws onto them. Clients switch on the code, never the message.
 */
import { GraphQLError } from 'graphql';
import { AuthenticationError, ForbiddenError } from '../auth/index.js';
import { InvalidNameError } from '../channels/index.js';
import { BrokerUnavailableError } from '../broker/types.js';
import { InvalidInputError, LimitExceededError } from './failures.js';

export const ErrorCode = {
  Unauthenticated: 'UNAUTHENTICATED',
  Forbidden: 'FORBIDDEN',
  BadUserInput: 'BAD_USER_INPUT',
  LimitExceeded: 'LIMIT_EXCEEDED',
  ServiceUnavailable: 'SERVICE_UNAVAILABLE',
  WrongServer: 'WRONG_SERVER',
  HistoryGap: 'HISTORY_GAP',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export function graphqlError(code: ErrorCode, message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code } });
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
  throw error;
}
