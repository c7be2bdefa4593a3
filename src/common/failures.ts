/**
 * Every failure kind Herald reports, declared once: its GraphQL `extensions.code` (the
 * key), its gRPC status, its HTTP status and whether it is expected — a caller's doing
 * or the world's (logged at most at info, its message shown) — or internal (a fault of
 * Herald's: logged at error, its message hidden in production). GraphQL errors, HTTP
 * answers, SSE events, WebSocket close reasons and gRPC statuses all read this table;
 * adding a kind is one line here.
 *
 * The transport-free core throws a {@link Failure} (or one of its named subclasses,
 * for callers that tell them apart); the transports map it through the table. Nothing
 * here imports a transport library: gRPC statuses are named by their grpc-js `status`
 * key.
 */

/** A gRPC status, by its name in grpc-js' `status` enum. */
export type GrpcStatusName =
  | 'UNAUTHENTICATED'
  | 'PERMISSION_DENIED'
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'RESOURCE_EXHAUSTED'
  | 'UNAVAILABLE'
  | 'DEADLINE_EXCEEDED'
  | 'UNIMPLEMENTED'
  | 'DATA_LOSS'
  | 'INTERNAL';

export interface FailureKind {
  /** The status a gRPC call ends with. */
  readonly grpc: GrpcStatusName;
  /**
   * The status of an HTTP request refused whole for this failure, before any operation
   * ran (an operation that ran answers 200 with the error in `errors`).
   */
  readonly http: number;
  /** False for a fault of Herald's: logged at error, message hidden in production. */
  readonly expected: boolean;
}

// prettier-ignore
export const FAILURES = {
  /** No token, or a bad or expired one. */
  UNAUTHENTICATED:       { grpc: 'UNAUTHENTICATED',    http: 401, expected: true },
  /** The principal may not do this (another user's notifications, another tenant). */
  FORBIDDEN:             { grpc: 'PERMISSION_DENIED',  http: 403, expected: true },
  /** The request itself is malformed (not JSON, wrong types) or sent the wrong way. */
  BAD_REQUEST:           { grpc: 'INVALID_ARGUMENT',   http: 400, expected: true },
  /** A field of a well-formed request is not acceptable; the message names it. */
  BAD_USER_INPUT:        { grpc: 'INVALID_ARGUMENT',   http: 400, expected: true },
  /** A path the HTTP edge does not serve; the message lists the ones it does. */
  NOT_FOUND:             { grpc: 'NOT_FOUND',          http: 404, expected: true },
  /** A configured limit was passed; the message names its variable. */
  LIMIT_EXCEEDED:        { grpc: 'RESOURCE_EXHAUSTED', http: 400, expected: true },
  /** Redis cannot be reached, or the server is shutting down; nothing was done. */
  SERVICE_UNAVAILABLE:   { grpc: 'UNAVAILABLE',        http: 503, expected: true },
  /** Redis did not confirm a change it was sent: it may have happened. gRPC's own word for that. */
  OUTCOME_UNKNOWN:       { grpc: 'DEADLINE_EXCEEDED',  http: 504, expected: true },
  /** An operation this server does not serve (a mutation sent to the subscribe server). */
  WRONG_SERVER:          { grpc: 'UNIMPLEMENTED',      http: 400, expected: true },
  /** Notifications after a cursor are not all kept (gRPC's Feed sends it as a message). */
  HISTORY_GAP:           { grpc: 'DATA_LOSS',          http: 410, expected: true },
  /** A fault of Herald's. */
  INTERNAL_SERVER_ERROR: { grpc: 'INTERNAL',           http: 500, expected: false },
} as const satisfies Record<string, FailureKind>;

/** A failure kind: the `extensions.code` clients switch on. */
export type FailureCode = keyof typeof FAILURES;

/** A failure of a kind in {@link FAILURES}; `message` is safe to show to the caller. */
export class Failure extends Error {
  override readonly name: string = 'Failure';
  constructor(
    readonly code: FailureCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** True for a failure of an expected kind: its message and code may go to the caller as they are. */
export function isExpectedFailure(error: unknown): error is Failure {
  return error instanceof Failure && FAILURES[error.code].expected;
}

/** A request field is malformed; `message` names the field and the rule. */
export class InvalidInputError extends Failure {
  override readonly name = 'InvalidInputError';
  constructor(message: string) {
    super('BAD_USER_INPUT', message);
  }
}

/** Redis (or the broker) cannot be reached and did nothing; the message says what failed. */
export class BrokerUnavailableError extends Failure {
  override readonly name = 'BrokerUnavailableError';
  constructor(message: string) {
    super('SERVICE_UNAVAILABLE', message);
  }
}

/**
 * The backend did not answer in time, or the connection dropped after the command was
 * sent: it may or may not have been carried out. A publisher retries with the same
 * idempotency key to be sure of one delivery.
 */
export class OutcomeUnknownError extends Failure {
  override readonly name = 'OutcomeUnknownError';
  constructor(message: string) {
    super('OUTCOME_UNKNOWN', message);
  }
}
