/**
 * `Mutation.sendNotification`: checks the publisher's scope and input, builds the
 * audience's channel inside the publisher's own tenant, publishes, and reports how many
 * live subscriptions the notification reached.
 */
import { authorizePublish } from '../auth/index.js';
import { AUDIENCES, type Audience, type ChannelNamer } from '../channels/index.js';
import { ErrorCode, graphqlError, toGraphQLError } from '../common/errors.js';
import { encodeNotification } from '../common/notification.js';
import type { Broker } from '../broker/types.js';
import { requirePrincipal, type HeraldContext } from '../graphql/schema.js';

export interface PublishResolverOptions {
  broker: Broker;
  channels: ChannelNamer;
  /** Longest `text` accepted, in characters (`MAX_TEXT_LENGTH`). */
  maxTextLength: number;
  /** How long an `idempotencyKey` is remembered, in ms (`IDEMPOTENCY_WINDOW_SECONDS`). */
  idempotencyWindowMs: number;
}

interface SendNotificationArgs {
  to: string;
  text: string;
  audience?: Audience | null;
  idempotencyKey?: string | null;
}

export function createPublishResolvers(options: PublishResolverOptions) {
  const { broker, channels, maxTextLength, idempotencyWindowMs } = options;
  return {
    Mutation: {
      async sendNotification(_root: unknown, args: SendNotificationArgs, context: HeraldContext) {
        const principal = requirePrincipal(context);
        const audience = args.audience ?? 'USER';
        if (!AUDIENCES.includes(audience)) throw graphqlError(ErrorCode.BadUserInput, `unknown audience ${audience}`);
        if (args.text.length === 0) throw graphqlError(ErrorCode.BadUserInput, 'text must not be empty');
        if (args.text.length > maxTextLength) {
          throw graphqlError(ErrorCode.BadUserInput, `text is longer than ${maxTextLength} characters (MAX_TEXT_LENGTH)`);
        }
        try {
          authorizePublish(principal);
          const destination = channels.destination(principal.tenant, audience, args.to);
          const key = args.idempotencyKey;
          return await broker.publish({
            destination,
            tenantKey: channels.tenantKey(principal.tenant),
            payload: encodeNotification({
              text: args.text,
              timestamp: Math.floor(Date.now() / 1000),
              audience,
              sender: principal.name,
            }),
            idempotency:
              key == null ? undefined : { key: channels.idempotencyKey(principal.tenant, principal.name, key), windowMs: idempotencyWindowMs },
          });
        } catch (error) {
          throw toGraphQLError(error);
        }
      },
    },
  };
}
