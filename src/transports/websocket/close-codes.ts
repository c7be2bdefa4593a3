/**
 * Every code a Herald WebSocket is closed with: graphql-transport-ws' own (the server's
 * side of graphql-ws' `CloseCode`, same numbers) and Herald's, in one table. A client
 * switches on these; every close in this transport names its member, never a number.
 */
import { CloseCode as ProtocolCloseCode } from 'graphql-ws';

export const CloseCode = {
  /** The server is shutting down: reconnect elsewhere (RFC 6455). */
  GoingAway: 1001,
  /** A frame was larger than `MAX_MESSAGE_BYTES` (set by `ws`, without a reason; RFC 6455). */
  MessageTooBig: 1009,
  /** A message that is not one of graphql-transport-ws', or a binary frame. */
  BadRequest: ProtocolCloseCode.BadRequest,
  /** `subscribe` before `connection_ack`. */
  Unauthorized: ProtocolCloseCode.Unauthorized,
  /** The token was refused at `connection_init`, or expired on the open connection. */
  Forbidden: ProtocolCloseCode.Forbidden,
  /** The upgrade chose a subprotocol other than graphql-transport-ws. */
  SubprotocolNotAcceptable: ProtocolCloseCode.SubprotocolNotAcceptable,
  /** No `connection_init` within `CONNECTION_INIT_TIMEOUT_MS`. */
  ConnectionInitialisationTimeout: ProtocolCloseCode.ConnectionInitialisationTimeout,
  /** A `subscribe` with the id of an operation still open. */
  SubscriberAlreadyExists: ProtocolCloseCode.SubscriberAlreadyExists,
  /** The client read too slowly: more than `MAX_BUFFERED_BYTES` waited to be sent to it. Herald's own. */
  SlowConsumer: 4413,
  /** A second `connection_init`. */
  TooManyInitialisationRequests: ProtocolCloseCode.TooManyInitialisationRequests,
  /** Herald failed; the reason says what, outside production. */
  InternalServerError: ProtocolCloseCode.InternalServerError,
} as const;

export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** A close reason may hold at most 123 bytes (RFC 6455 §5.5): a longer one is cut, with an ellipsis. */
export function closeReason(reason: string): string {
  if (Buffer.byteLength(reason) <= 123) return reason;
  let cut = reason.slice(0, 120);
  while (Buffer.byteLength(cut) > 120) cut = cut.slice(0, -1);
  return `${cut}…`;
}
