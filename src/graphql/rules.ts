/**
 * Validation rules both servers add to GraphQL's own: depth, alias and repeat limits,
 * the introspection switch and the operation kinds each server answers. They run
 * before GraphQL's own (see `documents.ts`), each in time linear in the document, so a
 * document they refuse never reaches the costlier ones. A violation is an ordinary
 * validation error with `extensions.code`, never a thrown exception.
 */
import { maxAliasesRule } from '@escape.tech/graphql-armor-max-aliases';
import {
  getNamedType,
  Kind,
  GraphQLError,
  isIntrospectionType,
  type ASTVisitor,
  type FieldNode,
  type OperationDefinitionNode,
  type OperationTypeNode,
  type SelectionSetNode,
  type ValidationContext,
  type ValidationRule,
} from 'graphql';

export interface RuleOptions {
  /** Deepest selection set accepted (`MAX_QUERY_DEPTH`); see {@link maxDepthRule}. */
  maxDepth: number;
  /** Most aliases in one operation (`MAX_QUERY_ALIASES`), `__typename` ones included. */
  maxAliases: number;
  /** Whether `__schema` and `__type` may be queried (`GRAPHQL_INTROSPECTION`). */
  introspection: boolean;
  /** The operation kinds this server answers. */
  operations: readonly OperationTypeNode[];
  /** Where to send the other kinds, e.g. "mutations go to the publish server". */
  elsewhere: string;
  /**
   * Mutation fields another server answers although this one answers mutations (the
   * user's own mutations are the subscribe server's, the services' the publish
   * server's), each refused as `WRONG_SERVER` with where to send it.
   * @default none
   */
  mutationsElsewhere?: Readonly<Record<string, string>>;
}

export function createValidationRules(options: RuleOptions): ValidationRule[] {
  const reportLimit = (variable: string) => (context: ValidationContext | null, error: GraphQLError) => {
    const message = error.message.replace(/^Syntax Error: /, '');
    context?.reportError(new GraphQLError(`${message} (${variable})`, { extensions: { code: 'LIMIT_EXCEEDED' } }));
  };
  return [
    maxDepthRule(options.maxDepth),
    // Every alias counts: armor skips `__typename` ones by default, and 200 of those are
    // as many response keys as 200 of any other field.
    maxAliasesRule({ n: options.maxAliases, allowList: [], propagateOnRejection: false, onReject: [reportLimit('MAX_QUERY_ALIASES')] }),
    repeatedFieldsRule(MAX_FIELD_REPEATS),
    ...(options.introspection ? [] : [introspectionOffRule]),
    operationKindRule(options.operations, options.elsewhere),
    ...(options.mutationsElsewhere ? [mutationFieldRule(options.mutationsElsewhere)] : []),
  ];
}

/** Most times one selection set may select the same response key; see {@link repeatedFieldsRule}. */
export const MAX_FIELD_REPEATS = 20;

/**
 * Refuses a selection set that selects one response key more than `maxRepeats` times,
 * its inline fragments included. GraphQL's own OverlappingFieldsCanBeMerged compares
 * every pair of fields that share a response key: 250 copies of `viewer { name }`
 * (1000 tokens) cost it 16 ms, and no real operation repeats a field like that.
 */
export function repeatedFieldsRule(maxRepeats: number): ValidationRule {
  return (context) => ({
    SelectionSet(node, _key, parent) {
      // An inline fragment's selections are counted with the selection set it is in.
      if (isNode(parent) && parent.kind === Kind.INLINE_FRAGMENT) return;
      const counts = new Map<string, number>();
      const count = (selectionSet: SelectionSetNode): void => {
        for (const selection of selectionSet.selections) {
          if (selection.kind === Kind.INLINE_FRAGMENT) {
            count(selection.selectionSet);
          } else if (selection.kind === Kind.FIELD) {
            const key = selection.alias?.value ?? selection.name.value;
            const times = (counts.get(key) ?? 0) + 1;
            counts.set(key, times);
            if (times === maxRepeats + 1) {
              context.reportError(
                new GraphQLError(`"${key}" is selected more than ${maxRepeats} times in one selection set`, {
                  nodes: [selection],
                  extensions: { code: 'LIMIT_EXCEEDED' },
                }),
              );
            }
          }
        }
      };
      count(node);
    },
  });
}

function isNode(value: unknown): value is { kind: Kind } {
  return typeof value === 'object' && value !== null && 'kind' in value;
}

/** What one operation or fragment contributes to depth, before fragments are resolved. */
interface DepthSummary {
  /** Deepest field inside the definition itself. */
  deepest: number;
  /** Each fragment spread inside it, with the depth it is spread at. */
  readonly spreads: Array<{ readonly name: string; readonly at: number }>;
}

/**
 * Refuses an operation whose response would nest deeper than `maxDepth` objects: each
 * field is one level, fragments (spread or inline) add none, through every fragment it
 * spreads and introspection alike (graphql-armor's rule skips `__schema`). One field
 * does not count: `ofType` of `__Type`, which follows a type's wrappers (`[T!]!`) and so
 * ends within a few levels whatever the query asks, while `fields { type { fields … } }`
 * multiplies the response at each level and counts. GraphiQL's schema query is 5 deep.
 * Each definition is walked once and fragments are resolved once each, so the cost is
 * linear in the document.
 */
export function maxDepthRule(maxDepth: number): ValidationRule {
  return (context): ASTVisitor => {
    const fragments = new Map<string, DepthSummary>();
    const operations: DepthSummary[] = [];
    let current: DepthSummary = { deepest: 0, spreads: [] };
    /** For each open field, whether it counted (so leaving it undoes exactly that). */
    const counted: boolean[] = [];
    let depth = 0;
    const begin = (): DepthSummary => {
      current = { deepest: 0, spreads: [] };
      depth = 0;
      counted.length = 0;
      return current;
    };
    const resolved = new Map<string, number>();
    const depthOf = (name: string): number => {
      const known = resolved.get(name);
      if (known !== undefined) return known;
      resolved.set(name, 0); // a cycle is NoFragmentCyclesRule's to report; it adds nothing here
      const summary = fragments.get(name);
      const total = summary ? totalDepth(summary) : 0;
      resolved.set(name, total);
      return total;
    };
    const totalDepth = (summary: DepthSummary): number =>
      summary.spreads.reduce((deepest, spread) => Math.max(deepest, spread.at + depthOf(spread.name)), summary.deepest);
    return {
      OperationDefinition: () => {
        operations.push(begin());
      },
      FragmentDefinition: (node) => {
        fragments.set(node.name.value, begin());
      },
      Field: {
        enter(node) {
          const counts = !(node.name.value === 'ofType' && context.getParentType()?.name === '__Type');
          counted.push(counts);
          if (counts) current.deepest = Math.max(current.deepest, ++depth);
        },
        leave() {
          if (counted.pop()) depth--;
        },
      },
      FragmentSpread(node) {
        current.spreads.push({ name: node.name.value, at: depth });
      },
      Document: {
        leave() {
          for (const operation of operations) {
            const total = totalDepth(operation);
            if (total > maxDepth) {
              context.reportError(
                new GraphQLError(`Query depth limit of ${maxDepth} exceeded, found ${total}. (MAX_QUERY_DEPTH)`, {
                  extensions: { code: 'LIMIT_EXCEEDED' },
                }),
              );
            }
          }
        },
      },
    };
  };
}

/**
 * graphql-js' `NoSchemaIntrospectionCustomRule` with a code, reported once per document:
 * no field of an introspection type (`__schema`, `__type`); `__typename` stays.
 */
const introspectionOffRule: ValidationRule = (context) => {
  let reported = false;
  return {
    Field(node) {
      if (reported) return;
      const type = getNamedType(context.getType());
      if (!type || !isIntrospectionType(type)) return;
      reported = true;
      context.reportError(
        new GraphQLError(`introspection is turned off, so "${node.name.value}" cannot be queried (GRAPHQL_INTROSPECTION)`, {
          nodes: [node],
          extensions: { code: 'FORBIDDEN' },
        }),
      );
    },
  };
};

function operationKindRule(operations: readonly OperationTypeNode[], elsewhere: string): ValidationRule {
  return (context) => ({
    OperationDefinition(node: OperationDefinitionNode) {
      if (!operations.includes(node.operation)) {
        context.reportError(
          new GraphQLError(`this server does not answer ${node.operation}s: ${elsewhere}`, {
            nodes: [node],
            extensions: { code: 'WRONG_SERVER' },
          }),
        );
      }
    },
  });
}

function mutationFieldRule(elsewhere: Readonly<Record<string, string>>): ValidationRule {
  return (context) => ({
    Field(node: FieldNode) {
      // Fragments on Mutation included: the parent type is what counts, not the spelling.
      const parent = context.getParentType();
      if (!parent || parent !== context.getSchema().getMutationType()) return;
      const where = Object.hasOwn(elsewhere, node.name.value) ? elsewhere[node.name.value] : undefined;
      if (where !== undefined) {
        context.reportError(
          new GraphQLError(`this server does not answer ${node.name.value}: ${where}`, { nodes: [node], extensions: { code: 'WRONG_SERVER' } }),
        );
      }
    },
  });
}
