/**
 * `Mutation.sendNotification` and `sendNotifications`: the GraphQL face of {@link Sender}.
 */
import { toGraphQLError } from '../common/errors.js';
import { requirePrincipal, type HeraldContext } from '../graphql/schema.js';
import type { Sender } from './send.js';

interface SendNotificationArgs {
  to: string;
  text: string;
  audience?: string | null;
  idempotencyKey?: string | null;
}

export function createPublishResolvers(sender: Sender) {
  return {
    Mutation: {
      async sendNotification(_root: unknown, args: SendNotificationArgs, context: HeraldContext) {
        const principal = requirePrincipal(context);
        try {
          return await sender.send(principal, args);
        } catch (error) {
          throw toGraphQLError(error);
        }
      },
      async sendNotifications(_root: unknown, args: { notifications: SendNotificationArgs[] }, context: HeraldContext) {
        const principal = requirePrincipal(context);
        try {
          return await sender.sendBatch(principal, args.notifications);
        } catch (error) {
          throw toGraphQLError(error);
        }
      },
    },
  };
}
