/**
 * The fan-out engine's renderer: per event, a subscription's selection set is executed
 * once per distinct operation (document, operation name and the variables its rendering
 * can read) and serialised once; every observer with that operation sends the same
 * payload.
 */
import { execute, getOperationAST, Kind, visit, type ASTNode, type DocumentNode, type FieldNode, type GraphQLSchema } from 'graphql';
import type { MaskError } from '../common/errors.js';
import type { AfterThisTurn } from '../common/timers.js';
import type { HeraldContext } from './schema.js';
import type { SubscriptionItem } from '../common/notification.js';
import { compileDirectRender } from './direct-render.js';

export interface OperationPlan {
  /** The payload of a graphql-transport-ws `next` message for `item`, as UTF-8 JSON. */
  render(item: SubscriptionItem): Buffer;
}

export interface Fanout {
  plan(operation: { document: DocumentNode; query: string; operationName?: string | undefined; variables?: Record<string, unknown> | undefined }): OperationPlan;
}

const NO_CONTEXT: HeraldContext = { principal: undefined };

/**
 * @param afterThisTurn when a plan forgets its last rendering: the end of the turn in
 * which the observer map delivered the event to every observer.
 * @param maskError what a rendering's errors (a `HISTORY_GAP`, a fault) pass through.
 */
export function createFanout(schema: GraphQLSchema, afterThisTurn: AfterThisTurn, maskError: MaskError): Fanout {
  /** One plan per distinct operation, shared by its subscriptions (and dropped with the last). */
  const plans = new Map<string, WeakRef<OperationPlan>>();
  const forget = new FinalizationRegistry<string>((key) => {
    if (plans.get(key)?.deref() === undefined) plans.delete(key);
  });
  return {
    plan({ document, query, operationName, variables }) {
      const key = `${operationName ?? ''}\n${query}\n${JSON.stringify(renderingVariables(document, operationName, variables))}`;
      const existing = plans.get(key)?.deref();
      if (existing) return existing;
      // The observer map hands one event to every observer of a channel in one go, so the
      // plan keeps only the last event it rendered, and only until the event loop moves
      // on: no map per event, and no event outlives its delivery.
      let lastItem: SubscriptionItem | undefined;
      let lastJson: Buffer | undefined;
      const direct = compileDirectRender(schema, document, operationName);
      const forgetLast = (): void => {
        lastItem = undefined;
        lastJson = undefined;
      };
      const plan: OperationPlan = {
        render(item) {
          if (item === lastItem && lastJson !== undefined) return lastJson;
          const json = direct?.(item);
          if (json !== undefined) {
            if (lastItem === undefined) afterThisTurn(forgetLast);
            lastItem = item;
            lastJson = Buffer.from(json);
            return lastJson;
          }
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
          if (lastItem === undefined) afterThisTurn(forgetLast);
          lastItem = item;
          lastJson = Buffer.from(JSON.stringify(result.errors ? { ...result, errors: result.errors.map(maskError) } : result));
          return lastJson;
        },
      };
      plans.set(key, new WeakRef(plan));
      forget.register(plan, key);
      return plan;
    },
  };
}

/**
 * The variables a rendering can read: all but those used only in the subscription
 * field's own arguments (`userName`, `since`), which choose what is heard, not how it is
 * shown — the field's `resolve` returns the item whatever they are. Without this every
 * user's `onNotificationReceived(userName: $userName)` was a plan of its own: a plan per
 * connection, ~0.5 KB of idle memory each. The plan renders with its first subscriber's
 * variables, the same as every later one's wherever the rendering reads them.
 */
function renderingVariables(document: DocumentNode, operationName: string | undefined, variables: Record<string, unknown> | undefined): Record<string, unknown> {
  if (variables === undefined) return {};
  const rootFields = new Set<FieldNode>();
  for (const selection of getOperationAST(document, operationName)?.selectionSet.selections ?? []) {
    if (selection.kind === Kind.FIELD) rootFields.add(selection);
  }
  const read = new Set<string>();
  const collect = (node: ASTNode): void => {
    visit(node, {
      Variable: (variable) => void read.add(variable.name.value),
      // Definitions declare variables; they are not read there.
      VariableDefinition: () => false,
      Field(field) {
        if (!rootFields.has(field)) return undefined;
        for (const directive of field.directives ?? []) collect(directive);
        if (field.selectionSet) collect(field.selectionSet);
        return false;
      },
    });
  };
  collect(document);
  const kept: Record<string, unknown> = {};
  for (const name of Object.keys(variables).sort()) if (read.has(name)) kept[name] = variables[name];
  return kept;
}
