/**
 * Rendering a plain selection of a notification without graphql-js' `execute`, for CPU
 * per delivery: `onNotificationReceived { id text … }` — leaf fields read straight off
 * the item — is what nearly every subscription asks, and executing it built an execution
 * context, coerced variables and walked the selection once per event. Compiled once per
 * plan, the same bytes come from a few string joins.
 *
 * Only a selection whose result is fixed by the item and the schema qualifies: one root
 * field that resolves the item as it is ({@link resolveItem}), of an object type, with
 * leaf subfields that have graphql-js' default resolver, no arguments, no directives and
 * no fragments (`__typename` too). Anything else — and any item the compiled form cannot
 * show exactly as `execute` would (a gap, a read-state change, a missing or ill-typed
 * field) — goes through `execute`.
 */
import type { DocumentNode, GraphQLLeafType, GraphQLSchema } from 'graphql';
import { plainOperation, type LeafField } from './plain-operation.js';
import { resolveItem } from './schema.js';
import type { SubscriptionItem } from '../common/notification.js';

/** The JSON of `{ data: … }` for `item`, or undefined where `execute` must render it. */
export type DirectRender = (item: SubscriptionItem) => string | undefined;

/** Compiles `document`'s operation, or answers undefined when it is not a plain selection. */
export function compileDirectRender(schema: GraphQLSchema, document: DocumentNode, operationName: string | undefined): DirectRender | undefined {
  const plain = plainOperation(schema, document, operationName, 'subscription');
  if (plain === undefined || plain.field.resolve !== resolveItem) return undefined;
  const { root, objectType, leaves } = plain;
  const head = `{"data":{${JSON.stringify(root.alias?.value ?? root.name.value)}:{`;
  const typename = JSON.stringify(objectType.name);
  return (item) => {
    // A gap is an error and a read-state change another type: `execute` shows both.
    if ('gap' in item || 'readUpTo' in item) return undefined;
    let json = head;
    for (let n = 0; n < leaves.length; n++) {
      const leaf = leaves[n] as LeafField;
      let value: string;
      if (leaf.name === undefined) {
        value = typename;
      } else {
        const raw = (item as unknown as Record<string, unknown>)[leaf.name];
        if (raw === undefined || raw === null) {
          if (leaf.nonNull) return undefined; // `execute` reports the error
          value = 'null';
        } else if (typeof raw === 'function') {
          return undefined; // the default resolver would call it
        } else {
          try {
            value = JSON.stringify((leaf.type as GraphQLLeafType).serialize(raw));
          } catch {
            return undefined; // `execute` reports the error
          }
        }
      }
      json += n === 0 ? `${leaf.prefix}${value}` : `,${leaf.prefix}${value}`;
    }
    return `${json}}}}`;
  };
}
