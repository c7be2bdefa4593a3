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
import {
  getNamedType,
  getNullableType,
  getOperationAST,
  isLeafType,
  isNonNullType,
  isObjectType,
  Kind,
  type DocumentNode,
  type FieldNode,
  type GraphQLLeafType,
  type GraphQLObjectType,
  type GraphQLSchema,
  type SelectionSetNode,
} from 'graphql';
import { resolveItem } from './schema.js';
import type { SubscriptionItem } from '../common/notification.js';

/** The JSON of `{ data: … }` for `item`, or undefined where `execute` must render it. */
export type DirectRender = (item: SubscriptionItem) => string | undefined;

/** A selected leaf of a plain selection. */
export interface LeafField {
  /** The response key (the alias, or the field's name). */
  readonly key: string;
  /** `"responseKey":`, JSON-escaped once. */
  readonly prefix: string;
  /** The item's property, or undefined for `__typename`. */
  readonly name: string | undefined;
  readonly type: GraphQLLeafType | undefined;
  readonly nonNull: boolean;
  /** The field's node (where `execute` locates an error). */
  readonly node: FieldNode;
}

/**
 * The leaves `selectionSet` selects on `objectType`, when it is a plain selection: leaf
 * fields with graphql-js' default resolver, no arguments, no directives, no fragments,
 * no key twice (`__typename` too); otherwise undefined.
 */
export function plainLeaves(objectType: GraphQLObjectType, selectionSet: SelectionSetNode): LeafField[] | undefined {
  const fields = objectType.getFields();
  const leaves: LeafField[] = [];
  const keys = new Set<string>();
  for (const selection of selectionSet.selections) {
    if (selection.kind !== Kind.FIELD || selection.arguments?.length || selection.directives?.length || selection.selectionSet) return undefined;
    const key = selection.alias?.value ?? selection.name.value;
    // The same key twice is merged by `execute`; not worth compiling.
    if (keys.has(key)) return undefined;
    keys.add(key);
    const prefix = `${JSON.stringify(key)}:`;
    if (selection.name.value === '__typename') {
      leaves.push({ key, prefix, name: undefined, type: undefined, nonNull: true, node: selection });
      continue;
    }
    const field = fields[selection.name.value];
    if (!field || field.resolve !== undefined || field.args.length > 0 || !isLeafType(getNamedType(field.type))) return undefined;
    leaves.push({ key, prefix, name: field.name, type: getNamedType(field.type) as GraphQLLeafType, nonNull: isNonNullType(field.type), node: selection });
  }
  return leaves;
}

/** Compiles `document`'s operation, or answers undefined when it is not a plain selection. */
export function compileDirectRender(schema: GraphQLSchema, document: DocumentNode, operationName: string | undefined): DirectRender | undefined {
  if (document.definitions.some((definition) => definition.kind === Kind.FRAGMENT_DEFINITION)) return undefined;
  const operation = getOperationAST(document, operationName);
  const subscriptionType = schema.getSubscriptionType();
  if (operation?.operation !== 'subscription' || !subscriptionType || operation.directives?.length) return undefined;
  const [root, ...others] = operation.selectionSet.selections;
  if (root?.kind !== Kind.FIELD || others.length > 0 || root.directives?.length || !root.selectionSet) return undefined;
  const rootField = subscriptionType.getFields()[root.name.value];
  if (rootField?.resolve !== resolveItem) return undefined;
  const objectType = getNullableType(rootField.type);
  if (!isObjectType(objectType)) return undefined;
  const leaves = plainLeaves(objectType, root.selectionSet);
  if (leaves === undefined) return undefined;
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
