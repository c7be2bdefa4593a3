/**
 * selectsSubfield: whether a resolver's caller asked for a subfield, however the
 * selection is spelled.
 */
import { buildSchema, execute, parse, type GraphQLResolveInfo } from 'graphql';
import { describe, expect, it } from 'vitest';
import { selectsSubfield } from '../../src/graphql/selection.js';

const schema = buildSchema(`
  type Result { id: ID! count: Int! }
  type Query { run: Result! }
`);

function asked(query: string): boolean {
  let answer: boolean | undefined;
  const rootValue = {
    run: (_args: unknown, _context: unknown, info: GraphQLResolveInfo) => {
      answer = selectsSubfield(info, 'count');
      return { id: '1', count: 2 };
    },
  };
  const result = execute({ schema, document: parse(query), rootValue });
  expect(result).not.toHaveProperty('errors');
  if (answer === undefined) throw new Error('the resolver did not run');
  return answer;
}

describe('selectsSubfield', () => {
  it.each([
    ['directly', '{ run { id count } }', true],
    ['under an alias', '{ run { n: count } }', true],
    ['in an inline fragment', '{ run { id ... on Result { count } } }', true],
    ['in a named fragment', '{ run { ...F } } fragment F on Result { count }', true],
    ['in a fragment inside a fragment', '{ run { ...F } } fragment F on Result { ...G } fragment G on Result { count }', true],
    ['not at all', '{ run { id } }', false],
    ['not in the fragment either', '{ run { ...F } } fragment F on Result { id }', false],
  ])('sees a field selected %s', (_how, query, expected) => {
    expect(asked(query)).toBe(expected);
  });
});
