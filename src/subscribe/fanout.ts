/**
 * The fan-out engine's renderer: per event, a subscription's selection set is executed
 * once per distinct operation (document, operation name and variables) and serialised
 * once; every observer with that operation sends the same payload. The event's
 * notification object is shared by every observer of a delivery, so a WeakMap keyed by
 * it holds each rendering exactly as long as the event is being fanned out.
 */
import { execute, type DocumentNode, type GraphQLSchema } from 'graphql';
import type { HeraldContext } from '../graphql/schema.js';
import type { FeedItem } from './subscriptions.js';

export interface OperationPlan {
  /** The payload of a graphql-transport-ws `next` message for `item`, as UTF-8 JSON. */
  render(item: FeedItem): Buffer;
}

export interface Fanout {
  plan(operation: { document: DocumentNode; query: string; operationName?: string | undefined; variables?: Record<string, unknown> | undefined }): OperationPlan;
}

const NO_CONTEXT: HeraldContext = { principal: undefined };

export function createFanout(schema: GraphQLSchema): Fanout {
  const rendered = new WeakMap<FeedItem, Map<string, Buffer>>();
  /** One plan per distinct operation, shared by its subscriptions (and dropped with the last). */
  const plans = new Map<string, WeakRef<OperationPlan>>();
  const forget = new FinalizationRegistry<string>((key) => {
    if (plans.get(key)?.deref() === undefined) plans.delete(key);
  });
  return {
    plan({ document, query, operationName, variables }) {
      const key = `${operationName ?? ''}\n${query}\n${JSON.stringify(variables ?? {})}`;
      const existing = plans.get(key)?.deref();
      if (existing) return existing;
      const plan: OperationPlan = {
        render(item) {
          let byOperation = rendered.get(item);
          if (!byOperation) {
            byOperation = new Map();
            rendered.set(item, byOperation);
          }
          let json = byOperation.get(key);
          if (json === undefined) {
            const result = execute({
              schema,
              document,
              operationName,
              variableValues: variables,
              rootValue: item,
              contextValue: NO_CONTEXT,
            });
            // Notification fields resolve synchronously; a promise here is a schema change
            // that must not silently reorder or drop events.
            if (result instanceof Promise) throw new Error('the fan-out path needs synchronous resolvers');
            json = Buffer.from(JSON.stringify(result));
            byOperation.set(key, json);
          }
          return json;
        },
      };
      plans.set(key, new WeakRef(plan));
      forget.register(plan, key);
      return plan;
    },
  };
}
