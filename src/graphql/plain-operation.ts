/**
 * What the compiled forms of an operation (`direct-render.ts`, `direct-mutation.ts`) take:
 * a plain operation, whose result graphql-js' `execute` would build from its one root
 * field's value and the schema alone.
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
  type GraphQLField,
  type GraphQLLeafType,
  type GraphQLObjectType,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from 'graphql';

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

/** A plain operation, taken apart. */
export interface PlainOperation {
  readonly operation: OperationDefinitionNode;
  /** The operation's root type (`Mutation`, `Subscription`). */
  readonly parentType: GraphQLObjectType;
  /** The one root field's node and definition. */
  readonly root: FieldNode;
  readonly field: GraphQLField<unknown, unknown>;
  /** The root field's object type, and the leaves selected on it. */
  readonly objectType: GraphQLObjectType;
  readonly leaves: readonly LeafField[];
}

/**
 * `document`'s operation of `kind` when it is plain: no fragments, no directives on the
 * operation, one root field of an object type, without directives, selecting
 * {@link plainLeaves}; otherwise undefined. The root field's resolver is the caller's
 * to check.
 */
export function plainOperation(
  schema: GraphQLSchema,
  document: DocumentNode,
  operationName: string | undefined,
  kind: 'mutation' | 'subscription',
): PlainOperation | undefined {
  if (document.definitions.some((definition) => definition.kind === Kind.FRAGMENT_DEFINITION)) return undefined;
  const operation = getOperationAST(document, operationName);
  const parentType = kind === 'mutation' ? schema.getMutationType() : schema.getSubscriptionType();
  if (operation?.operation !== kind || !parentType || operation.directives?.length) return undefined;
  const [root, ...others] = operation.selectionSet.selections;
  if (root?.kind !== Kind.FIELD || others.length > 0 || root.directives?.length || !root.selectionSet) return undefined;
  const field = parentType.getFields()[root.name.value];
  if (!field) return undefined;
  const objectType = getNullableType(field.type);
  if (!isObjectType(objectType)) return undefined;
  const leaves = plainLeaves(objectType, root.selectionSet);
  return leaves && { operation, parentType, root, field, objectType, leaves };
}

/**
 * The leaves `selectionSet` selects on `objectType`, when it is a plain selection: leaf
 * fields with graphql-js' default resolver, no arguments, no directives, no fragments,
 * no key twice (`__typename` too); otherwise undefined.
 */
function plainLeaves(objectType: GraphQLObjectType, selectionSet: SelectionSetNode): LeafField[] | undefined {
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
    const leaf = fields[selection.name.value];
    if (!leaf || leaf.resolve !== undefined || leaf.args.length > 0 || !isLeafType(getNamedType(leaf.type))) return undefined;
    leaves.push({ key, prefix, name: leaf.name, type: getNamedType(leaf.type) as GraphQLLeafType, nonNull: isNonNullType(leaf.type), node: selection });
  }
  return leaves;
}
