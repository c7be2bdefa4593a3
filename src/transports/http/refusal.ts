/**
 * The answer to an HTTP request refused whole, before any operation ran: the status of
 * its failure kind (`common/failures.ts`) and its error as a GraphQL error body, through
 * the one error mask. A refused token is a 401, a malformed request a 400, a fault a 500.
 */
import { STATUS_CODES } from 'node:http';
import { failureCodeOf, type MaskError } from '../../common/errors.js';
import { FAILURES } from '../../common/failures.js';

export interface Refusal {
  readonly status: number;
  readonly statusText: string;
  /** `{"errors":[…]}`, as JSON. */
  readonly body: string;
}

export function refusal(error: unknown, maskError: MaskError): Refusal {
  const masked = maskError(error);
  const status = FAILURES[failureCodeOf(masked)].http;
  return { status, statusText: STATUS_CODES[status] ?? '', body: JSON.stringify({ errors: [masked.toJSON()] }) };
}
