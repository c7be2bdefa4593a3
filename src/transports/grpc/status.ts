/**
 * A gRPC status for any error, read from the failure table (`common/failures.ts`) after
 * the one error mask: the same kinds, codes and masking as GraphQL's.
 */
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { failureCodeOf, type MaskError } from '../../common/errors.js';
import { FAILURES } from '../../common/failures.js';

/** A status to end a call with; an internal error is masked (and logged once) by `maskError`. */
export function toServiceError(error: unknown, maskError: MaskError): Partial<ServiceError> & { code: status; details: string } {
  const masked = maskError(error);
  return { code: status[FAILURES[failureCodeOf(masked)].grpc], details: masked.message, message: masked.message, metadata: new Metadata() };
}
