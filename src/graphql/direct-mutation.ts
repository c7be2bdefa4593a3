/**
 * Running a plain mutation without graphql-js' `execute`, for CPU per publish:
 * `mutation { sendNotification(to: $to, text: $text) { id receivedUsers } }` — one root
 * field whose result is a few leaves — is what nearly every publisher sends, and executing
 * it built an execution context, coerced variables and arguments, collected fields and
 * completed the result through graphql-js' general machinery once per request. Compiled
 * once per document, the same result comes from the field's own resolver and a loop over
 * the selected leaves: GraphQL's share of the publish server went from 11 % to 6 %
 * (docs/benchmark.md).
 *
 * Variables and arguments are coerced as `execute` coerces them (`getVariableValues`,
 * `getArgumentValues`), in a form compiled for the operation ({@link compileVariables},
 * {@link compileArguments}); wherever they would refuse, nothing has run and the request
 * is left to `execute`, which answers with the same errors. The
 * resolver is the schema's, called with the arguments, context and resolve info `execute`
 * would give it. Its result is completed as `execute` completes a plain selection: leaves
 * serialized by their types, a resolver's error or a null for a non-null leaf located at
 * its path and propagated to the nearest nullable parent. The result is the same
 * `ExecutionResult`, key for key.
 *
 * Only a plain operation qualifies: a mutation with no directives and no fragments, one
 * root field with the schema's resolver, whose type is an object selected by a plain
 * selection (`plain-operation.ts`). Anything else is `execute`'s.
 */
import {
  getNullableType,
  getVariableValues,
  GraphQLID,
  GraphQLString,
  isInputType,
  isNonNullType,
  Kind,
  locatedError,
  typeFromAST,
  valueFromAST,
  type DocumentNode,
  type ExecutionResult,
  type FieldNode,
  type GraphQLError,
  type GraphQLField,
  type GraphQLResolveInfo,
  type GraphQLSchema,
  type VariableDefinitionNode,
} from 'graphql';
import { plainOperation } from './plain-operation.js';

/** What `execute` gives for these variables and context, or undefined when `execute` must run it. */
export type DirectMutation = (variableValues: { readonly [name: string]: unknown } | null | undefined, contextValue: unknown) => Promise<ExecutionResult> | undefined;

/** Compiles `document`'s operation, or answers undefined when it is not a plain mutation. */
export function compileDirectMutation(schema: GraphQLSchema, document: DocumentNode, operationName: string | undefined): DirectMutation | undefined {
  const plain = plainOperation(schema, document, operationName, 'mutation');
  const resolve = plain?.field.resolve;
  if (plain === undefined || resolve === undefined) return undefined;
  const { operation, parentType: mutationType, root, field, objectType, leaves } = plain;
  const rootKey = root.alias?.value ?? root.name.value;
  const rootNonNull = isNonNullType(field.type);
  const coerceVariables = compileVariables(schema, operation.variableDefinitions ?? []);
  const coerceArguments = compileArguments(field, root);
  const fieldNodes = [root];
  const path = { prev: undefined, key: rootKey, typename: mutationType.name };

  /** The response once the root field failed with `error` (located), as `execute` propagates it. */
  const failed = (error: GraphQLError): ExecutionResult => (rootNonNull ? { errors: [error], data: null } : { errors: [error], data: { [rootKey]: null } });

  /** `result` completed as `execute` completes the selection. */
  const complete = (result: unknown): ExecutionResult => {
    if (result instanceof Error) return failed(locatedError(result, [root], [rootKey]));
    if (result === null || result === undefined) {
      if (!rootNonNull) return { data: { [rootKey]: null } };
      return failed(locatedError(new Error(`Cannot return null for non-nullable field ${mutationType.name}.${field.name}.`), [root], [rootKey]));
    }
    const source = result as Record<string, unknown>;
    const value: Record<string, unknown> = {};
    const errors: GraphQLError[] = [];
    for (const leaf of leaves) {
      if (leaf.name === undefined) {
        value[leaf.key] = objectType.name;
        continue;
      }
      const raw = source[leaf.name];
      let error: GraphQLError | undefined;
      if (raw instanceof Error) {
        error = locatedError(raw, [leaf.node], [rootKey, leaf.key]);
      } else if (raw === null || raw === undefined) {
        if (leaf.nonNull) error = locatedError(new Error(`Cannot return null for non-nullable field ${objectType.name}.${leaf.name}.`), [leaf.node], [rootKey, leaf.key]);
        else value[leaf.key] = null;
      } else {
        try {
          const serialized: unknown = leaf.type?.serialize(raw);
          if (serialized === null || serialized === undefined) throw new Error(`Expected \`${String(leaf.type)}.serialize\` to return non-nullable value, returned: ${String(serialized)}`);
          value[leaf.key] = serialized;
        } catch (thrown) {
          error = locatedError(thrown, [leaf.node], [rootKey, leaf.key]);
        }
      }
      if (error === undefined) continue;
      // A non-null leaf's error nulls the object, and so up to a nullable parent.
      if (leaf.nonNull) return failed(error);
      errors.push(error);
      value[leaf.key] = null;
    }
    const data = { [rootKey]: value };
    return errors.length > 0 ? { errors, data } : { data };
  };

  return (variableValues, contextValue) => {
    const variables = coerceVariables(variableValues ?? {});
    if (variables === undefined) return undefined;
    const args = coerceArguments(variables);
    if (args === undefined) return undefined;
    const info: GraphQLResolveInfo = {
      fieldName: field.name,
      fieldNodes,
      returnType: field.type,
      parentType: mutationType,
      path,
      schema,
      fragments: {},
      rootValue: undefined,
      operation,
      variableValues: variables,
    };
    let resolved: unknown;
    try {
      resolved = resolve(undefined, args, contextValue, info);
    } catch (error) {
      return Promise.resolve(failed(locatedError(error, [root], [rootKey])));
    }
    return Promise.resolve(resolved).then(complete, (error: unknown) => failed(locatedError(error, [root], [rootKey])));
  };
}

type Variables = { [name: string]: unknown };
const hasOwn = (object: object, key: string): boolean => Object.prototype.hasOwnProperty.call(object, key);

/**
 * The operation's variables coerced as `getVariableValues` coerces them, or undefined
 * where it reports an error. A variable of type `String` or `ID` given a string is that
 * string (both types' `parseValue` give a string back as it is), and a nullable one given
 * null is null: an operation whose variables are all such takes them without
 * `getVariableValues`, while any other value, or another type, goes through it.
 */
function compileVariables(schema: GraphQLSchema, definitions: readonly VariableDefinitionNode[]): (inputs: { readonly [name: string]: unknown }) => Variables | undefined {
  const viaGraphQL = (inputs: { readonly [name: string]: unknown }): Variables | undefined => {
    const variables = getVariableValues(schema, definitions, inputs, { maxErrors: 50 });
    return variables.errors === undefined ? variables.coerced : undefined;
  };
  const plain = definitions.map((definition) => {
    const type = typeFromAST(schema, definition.type);
    const named = type && isInputType(type) ? getNullableType(type) : undefined;
    return {
      name: definition.variable.name.value,
      nonNull: type !== undefined && isNonNullType(type),
      isString: named === GraphQLString || named === GraphQLID,
      defaultValue: definition.defaultValue && type && isInputType(type) ? valueFromAST(definition.defaultValue, type) : undefined,
      hasDefault: definition.defaultValue !== undefined,
    };
  });
  if (plain.some((variable) => !variable.isString)) return viaGraphQL;
  return (inputs) => {
    const coerced: Variables = Object.create(null) as Variables;
    for (const variable of plain) {
      if (!hasOwn(inputs, variable.name)) {
        if (variable.hasDefault) coerced[variable.name] = variable.defaultValue;
        else if (variable.nonNull) return viaGraphQL(inputs);
        continue;
      }
      const value = inputs[variable.name];
      if (typeof value === 'string' || (value === null && !variable.nonNull)) coerced[variable.name] = value;
      else return viaGraphQL(inputs);
    }
    return coerced;
  };
}

/**
 * `field`'s arguments in `node` coerced as `getArgumentValues` coerces them, planned once:
 * a default, a variable's value, or a literal's (`valueFromAST`); undefined wherever
 * `getArgumentValues` would throw (a required argument without a value, a null for a
 * non-null one, a literal its type refuses).
 */
function compileArguments(field: GraphQLField<unknown, unknown>, node: FieldNode): (variables: Variables) => { [argument: string]: unknown } | undefined {
  const given = new Map((node.arguments ?? []).map((argument) => [argument.name.value, argument.value]));
  const steps = field.args.map((definition) => ({ definition, value: given.get(definition.name), nonNull: isNonNullType(definition.type) }));
  return (variables) => {
    const args: { [argument: string]: unknown } = {};
    for (const { definition, value, nonNull } of steps) {
      if (value === undefined) {
        if (definition.defaultValue !== undefined) args[definition.name] = definition.defaultValue;
        else if (nonNull) return undefined;
        continue;
      }
      let isNull = value.kind === Kind.NULL;
      if (value.kind === Kind.VARIABLE) {
        if (!hasOwn(variables, value.name.value)) {
          if (definition.defaultValue !== undefined) args[definition.name] = definition.defaultValue;
          else if (nonNull) return undefined;
          continue;
        }
        isNull = variables[value.name.value] === null || variables[value.name.value] === undefined;
      }
      if (isNull && nonNull) return undefined;
      const coerced: unknown = valueFromAST(value, definition.type, variables);
      if (coerced === undefined) return undefined;
      args[definition.name] = coerced;
    }
    return args;
  };
}
