/**
 * What a closed connection means for the session, by Herald's close codes
 * (src/transports/websocket/close-codes.ts) and RFC 6455's.
 */

/** `resume`: reconnect with backoff and resume with `since`; `resume-overloaded`: the same, backing off harder; `stop`: end the session and report. */
export type CloseVerdict = 'resume' | 'resume-overloaded' | 'stop';

export interface CloseContext {
  /** Whether the server had acknowledged the connection (`connection_ack`) before it closed. */
  readonly acknowledged: boolean;
  /** Whether the token can be refreshed (a function, not a string). */
  readonly refreshable: boolean;
}

/** Herald's and graphql-ws' close codes that the policy names. */
const CloseCodes = {
  GoingAway: 1001,
  ServiceRestart: 1012,
  TryAgainLater: 1013,
  Forbidden: 4403,
  SubprotocolNotAcceptable: 4406,
  SlowConsumer: 4413,
  TooManyInitialisationRequests: 4429,
} as const;

/**
 * - 4403 refused the token at `connection_init`: stop (a new connection would present the
 *   same refusal, and a client must never fall back to less). 4403 on an acknowledged
 *   connection because the token expired: resume, with a fresh token, when the token can be
 *   refreshed (the in-band refresh was late — a suspended laptop); stop otherwise.
 * - 4406: the server does not speak graphql-transport-ws; no retry will change that.
 * - 4429 and 1013: the server is overloaded; back off harder.
 * - Everything else — 4413 (we read too slowly), 1001 (draining), 1012 (restart), 1006
 *   (the network) and unknown codes — resume.
 */
export function closeVerdict(code: number, reason: string, context: CloseContext): CloseVerdict {
  switch (code) {
    case CloseCodes.Forbidden:
      return context.acknowledged && context.refreshable && /expired/i.test(reason) ? 'resume' : 'stop';
    case CloseCodes.SubprotocolNotAcceptable:
      return 'stop';
    case CloseCodes.TooManyInitialisationRequests:
    case CloseCodes.TryAgainLater:
      return 'resume-overloaded';
    default:
      return 'resume';
  }
}
