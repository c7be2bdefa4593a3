/**
 * What a failed Redis command means to a caller: nothing was done, or it may have been.
 */
import { ReplyError } from 'ioredis';
import { BrokerUnavailableError, OutcomeUnknownError } from './types.js';

/** The error ioredis gives a command it did not send: the connection was not writable. */
const NOT_SENT = "Stream isn't writeable";

/**
 * A failure to reach Redis becomes {@link BrokerUnavailableError}; an error Redis itself
 * answered (a script bug, a wrong type) is a fault of Herald's and is rethrown as it is.
 */
export function unavailable(command: string, error: unknown): Error {
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
  if (error instanceof ReplyError) return error as Error;
  const reason = error instanceof Error ? error.message : String(error);
  if (reason.startsWith(NOT_SENT)) return new BrokerUnavailableError(`Redis is unavailable (${command} was not sent: ${reason})`);
  return new OutcomeUnknownError(
    `Redis did not confirm the ${command} (${reason}): it may or may not have been carried out; retry with the same idempotencyKey to be sure of one delivery`,
  );
}
