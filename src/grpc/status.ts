/**
 * gRPC status codes for the typed failures of the core — the same failures GraphQL
 * reports as `extensions.code`.
 */
import { status, type ServiceError, Metadata } from '@grpc/grpc-js';
import { AuthenticationError, ForbiddenError } from '../auth/index.js';
import { BrokerUnavailableError, OutcomeUnknownError } from '../broker/types.js';
import { InvalidNameError } from '../channels/index.js';
import { InvalidInputError, LimitExceededError } from '../common/failures.js';

/** A status to end a call with; internal errors are masked outside development. */
export function toServiceError(error: unknown, production: boolean): Partial<ServiceError> & { code: status; details: string } {
  const message = error instanceof Error ? error.message : String(error);
  const as = (code: status, details = message) => ({ code, details, message: details, metadata: new Metadata() });
  if (error instanceof AuthenticationError) return as(status.UNAUTHENTICATED);
  if (error instanceof ForbiddenError) return as(status.PERMISSION_DENIED);
  if (error instanceof InvalidNameError || error instanceof InvalidInputError) return as(status.INVALID_ARGUMENT);
  if (error instanceof LimitExceededError) return as(status.RESOURCE_EXHAUSTED);
  if (error instanceof BrokerUnavailableError) return as(status.UNAVAILABLE);
  // gRPC's own word for "may have completed": a deadline passed on a state-changing call.
  if (error instanceof OutcomeUnknownError) return as(status.DEADLINE_EXCEEDED);
  return as(status.INTERNAL, production ? 'internal error' : message);
}

/** True for the failures a caller caused (logged quietly); false for Herald's own. */
export function isExpected(error: unknown): boolean {
  return (
    error instanceof AuthenticationError ||
    error instanceof ForbiddenError ||
    error instanceof InvalidNameError ||
    error instanceof InvalidInputError ||
    error instanceof LimitExceededError ||
    error instanceof BrokerUnavailableError ||
    error instanceof OutcomeUnknownError
  );
}
