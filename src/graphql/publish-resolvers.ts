/**
 * `Mutation.sendNotification` and `sendNotifications`: the GraphQL face of {@link Sender}.
 * Its failures are thrown as they are: the error mask gives each its code (`common/failures.ts`).
 * Deliveries are counted only when the caller selects `receivedUsers`: counting waits
 * for every subscribe server's report, and a caller that only wants the id need not.
 */
import type { GraphQLResolveInfo } from 'graphql';
import { requirePrincipal, type HeraldContext } from './schema.js';
import { selectsSubfield } from './selection.js';
import type { Sender } from '../core/send.js';

interface SendNotificationArgs {
  to: string;
  text: string;
  audience?: string | null;
  idempotencyKey?: string | null;
  push?: string | null;
  collapseKey?: string | null;
  ttl?: number | null;
  priority?: string | null;
  category?: string | null;
  critical?: boolean | null;
}

export function createPublishResolvers(sender: Sender) {
  return {
    Mutation: {
      sendNotification(_root: unknown, args: SendNotificationArgs, context: HeraldContext, info: GraphQLResolveInfo) {
        const principal = requirePrincipal(context);
        return sender.send(principal, args, { countDeliveries: selectsSubfield(info, 'receivedUsers') });
      },
      sendNotifications(_root: unknown, args: { notifications: SendNotificationArgs[] }, context: HeraldContext, info: GraphQLResolveInfo) {
        const principal = requirePrincipal(context);
        return sender.sendBatch(principal, args.notifications, { countDeliveries: selectsSubfield(info, 'receivedUsers') });
      },
    },
  };
}
