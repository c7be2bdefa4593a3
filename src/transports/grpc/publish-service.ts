/**
 * `herald.v1.NotificationPublisher`: `Send` and `SendBatch`, the gRPC face of the same
 * {@link Sender} the GraphQL mutation uses.
 */
import type { sendUnaryData, ServerUnaryCall, ServiceDefinition, UntypedServiceImplementation } from '@grpc/grpc-js';
import type { TokenVerifier } from '../../auth/index.js';
import type { PublishResult } from '../../broker/types.js';
import type { MaskError } from '../../common/errors.js';
import type { Sender } from '../../core/send.js';
import { principalOf } from './auth.js';
import { fromGrpcAudience, fromGrpcPushPolicy, fromGrpcPushPriority, loadHeraldProto, type SendRequest, type SendResponse } from './proto.js';
import { toServiceError } from './status.js';

export interface PublishServiceOptions {
  sender: Sender;
  verifier: TokenVerifier;
  /** The server's one error mask: what a client may see of a failure. */
  maskError: MaskError;
}

export function createPublishService(options: PublishServiceOptions): {
  definition: ServiceDefinition;
  implementation: UntypedServiceImplementation;
} {
  const { sender, verifier, maskError } = options;

  const toSendRequest = (request: SendRequest) => ({
    to: request.to,
    text: request.text,
    audience: fromGrpcAudience(request.audience),
    idempotencyKey: request.idempotencyKey === '' ? undefined : request.idempotencyKey,
    push: fromGrpcPushPolicy(request.push),
    collapseKey: request.collapseKey === '' ? undefined : request.collapseKey,
    ttl: request.ttl ?? undefined,
    priority: fromGrpcPushPriority(request.priority),
    category: request.category === '' || request.category == null ? undefined : request.category,
    critical: request.critical === true ? true : undefined,
  });
  const toResponse = (result: PublishResult): SendResponse => ({ id: result.id, receivedUsers: result.receivedUsers ?? 0, duplicate: result.duplicate });

  /** Runs `work` for an authenticated caller and answers with its result or its status. */
  const unary =
    <Request, Response>(work: (principal: ReturnType<typeof principalOf>, request: Request) => Promise<Response>) =>
    (call: ServerUnaryCall<Request, Response>, callback: sendUnaryData<Response>): void => {
      let principal;
      try {
        principal = principalOf(call.metadata, verifier);
      } catch (error) {
        return callback(toServiceError(error, maskError));
      }
      work(principal, call.request).then(
        (response) => callback(null, response),
        (error: unknown) => callback(toServiceError(error, maskError)),
      );
    };

  return {
    definition: loadHeraldProto().NotificationPublisher.service,
    implementation: {
      send: unary<SendRequest, SendResponse>(async (principal, request) => toResponse(await sender.send(principal, toSendRequest(request)))),
      sendBatch: unary<{ notifications: SendRequest[] }, { results: SendResponse[] }>(async (principal, request) => ({
        results: (await sender.sendBatch(principal, request.notifications.map(toSendRequest))).map(toResponse),
      })),
    },
  };
}
