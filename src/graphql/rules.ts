/**
 * Validation rules both servers add to GraphQL's own: depth and alias limits (from
 * graphql-armor) and the operation kinds each server answers. A violation is an
 * ordinary validation error with `extensions.code`, never a thrown exception.
 */
import { maxAliasesRule } from '@escape.tech/graphql-armor-max-aliases';
import { maxDepthRule } from '@escape.tech/graphql-armor-max-depth';
import { GraphQLError, type OperationTypeNode, type ValidationContext, type ValidationRule } from 'graphql';
import { ErrorCode } from '../common/errors.js';

export interface RuleOptions {
  /** Deepest selection set accepted (`MAX_QUERY_DEPTH`). */
  maxDepth: number;
  /** Most aliases in one operation (`MAX_QUERY_ALIASES`). */
  maxAliases: number;
  /** The operation kinds this server answers. */
  operations: readonly OperationTypeNode[];
  /** Where to send the other kinds, e.g. "mutations go to the publish server". */
  elsewhere: string;
}

export function createValidationRules(options: RuleOptions): ValidationRule[] {
  const reportLimit = (variable: string) => (context: ValidationContext | null, error: GraphQLError) => {
    const message = error.message.replace(/^Syntax Error: /, '');
    context?.reportError(new GraphQLError(`${message} (${variable})`, { extensions: { code: ErrorCode.LimitExceeded } }));
  };
  return [
    maxDepthRule({ n: options.maxDepth, propagateOnRejection: false, onReject: [reportLimit('MAX_QUERY_DEPTH')] }),
    maxAliasesRule({ n: options.maxAliases, propagateOnRejection: false, onReject: [reportLimit('MAX_QUERY_ALIASES')] }),
    operationKindRule(options.operations, options.elsewhere),
  ];
}

function operationKindRule(operations: readonly OperationTypeNode[], elsewhere: string): ValidationRule {
  return (context) => ({
    OperationDefinition(node) {
      if (!operations.includes(node.operation)) {
        context.reportError(
          new GraphQLError(`this server does not answer ${node.operation}s: ${elsewhere}`, {
            nodes: [node],
            extensions: { code: ErrorCode.WrongServer },
          }),
        );
      }
    },
  });
}
