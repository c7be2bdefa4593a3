/**
 * Typed failures the transport-free core throws for things a caller did wrong. Each
 * transport maps them onto its own vocabulary: GraphQL `extensions.code`
 * (`common/errors.ts`) or gRPC status codes (`grpc/status.ts`).
 */

/** A request field is malformed; `message` names the field and the rule. */
export class InvalidInputError extends Error {
  override readonly name = 'InvalidInputError';
}

/** A configured limit was passed; `message` names the limit's variable. */
export class LimitExceededError extends Error {
  override readonly name = 'LimitExceededError';
}
