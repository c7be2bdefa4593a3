/**
 * What a failed Redis command means to a caller: nothing was done, or it may have been.
 */
import { ReplyError } from 'ioredis';
import { BrokerUnavailableError, OutcomeUnknownError } from '../common/failures.js';

/** The error ioredis gives a command it did not send: the connection was not writable. */
const NOT_SENT = "Stream isn't writeable";

/**
 * Replies with which Redis refused a command without running it: a Cluster whose slots
 * are not all served (a master is failing over) or moving, a node still loading its
 * data or demoted to a replica. ioredis retries some of them first; when they still
 * reach the caller, Redis is unavailable, not wrong. ioredis' own "Too many Cluster
 * redirections" and "Cluster isn't ready" mean the same.
 */
const REFUSED = /^(CLUSTERDOWN|TRYAGAIN|MOVED|ASK|LOADING|READONLY|MASTERDOWN)\b|^Too many Cluster redirections|^Cluster isn't ready/;

function refused(error: unknown): string | undefined {
  const reason = error instanceof Error ? error.message : String(error);
  return REFUSED.test(reason) ? reason : undefined;
}

/**
 * A failure to reach Redis becomes {@link BrokerUnavailableError}; an error Redis itself
 * answered (a script bug, a wrong type) is a fault of Herald's and is rethrown as it is.
 */
export function unavailable(command: string, error: unknown): Error {
  const refusal = refused(error);
  if (refusal !== undefined) return new BrokerUnavailableError(`Redis is unavailable (${command} was refused: ${refusal})`);
  if (error instanceof ReplyError) return error as Error;
  const reason = error instanceof Error ? error.message : String(error);
  return new BrokerUnavailableError(`Redis is unavailable (${command} failed: ${reason})`);
}

/**
 * Like {@link unavailable}, for a command that changes something: one ioredis did not
 * send is {@link BrokerUnavailableError}; one that was sent and then timed out or lost
 * its connection may have been carried out, and is {@link OutcomeUnknownError}.
 */
export function outcomeOf(command: string, error: unknown): Error {
  const refusal = refused(error);
  if (refusal !== undefined) return new BrokerUnavailableError(`Redis is unavailable (${command} was refused, nothing was done: ${refusal})`);
  if (error instanceof ReplyError) return error as Error;
  const reason = error instanceof Error ? error.message : String(error);
  if (reason.startsWith(NOT_SENT)) return new BrokerUnavailableError(`Redis is unavailable (${command} was not sent: ${reason})`);
  return new OutcomeUnknownError(
    `Redis did not confirm the ${command} (${reason}): it may or may not have been carried out; retry with the same idempotencyKey to be sure of one delivery`,
  );
}
