/**
 * Herald's validation rules: depth (introspection included, `ofType` aside, through
 * fragments, in linear time), aliases (`__typename` ones too), repeated fields and the
 * introspection switch.
 */
import { buildSchema, getIntrospectionQuery, OperationTypeNode, parse, validate, type ValidationRule } from 'graphql';
import { describe, expect, it } from 'vitest';
import { createValidationRules, maxDepthRule, MAX_FIELD_REPEATS, repeatedFieldsRule } from '../../src/graphql/rules.js';
import { typeDefs } from '../../src/graphql/schema.js';

const schema = buildSchema(typeDefs);
const errorsOf = (query: string, rules: readonly ValidationRule[]) => validate(schema, parse(query), rules).map((error) => ({ message: error.message, code: error.extensions['code'] }));
const herald = (introspection = true) =>
  createValidationRules({ maxDepth: 8, maxAliases: 10, introspection, operations: [OperationTypeNode.QUERY], elsewhere: 'elsewhere' });

/** `fields { type { … } }` `levels` times inside `__schema { queryType }`: two levels a step. */
const fieldsOfFields = (levels: number) => `{ __schema { queryType { ${'fields { type { '.repeat(levels)}name${' } }'.repeat(levels)} } } }`;

describe('maxDepthRule', () => {
  it('counts introspection like any other query', () => {
    expect(errorsOf(fieldsOfFields(2), [maxDepthRule(8)])).toEqual([]); // 7 deep
    expect(errorsOf(fieldsOfFields(3), [maxDepthRule(8)])).toEqual([
      { message: 'Query depth limit of 8 exceeded, found 9. (MAX_QUERY_DEPTH)', code: 'LIMIT_EXCEEDED' },
    ]);
  });

  it('does not count `ofType` of __Type, which only follows wrappers, but counts what is below it', () => {
    const ofTypes = `{ __type(name: "Query") { ${'ofType { '.repeat(20)}name${' }'.repeat(20)} } }`;
    expect(errorsOf(ofTypes, [maxDepthRule(2)])).toEqual([]);
    const below = `{ __type(name: "Query") { ofType { ofType { fields { type { fields { type { name } } } } } } } }`;
    expect(errorsOf(below, [maxDepthRule(5)])).toEqual([{ message: 'Query depth limit of 5 exceeded, found 6. (MAX_QUERY_DEPTH)', code: 'LIMIT_EXCEEDED' }]);
  });

  it('lets GraphiQL’s schema query through at the default depth of 8', () => {
    const query = getIntrospectionQuery({ descriptions: true, inputValueDeprecation: true, schemaDescription: true, specifiedByUrl: true });
    expect(errorsOf(query, [maxDepthRule(8)])).toEqual([]);
    expect(errorsOf(query, [maxDepthRule(4)])).toHaveLength(1);
  });

  it('counts the fields of fragments where they are spread, the fragments themselves adding nothing', () => {
    const query = `{ __type(name: "Query") { ...A } }
      fragment A on __Type { fields { ...B } }
      fragment B on __Field { type { ... on __Type { fields { name } } } }`;
    expect(errorsOf(query, [maxDepthRule(5)])).toEqual([]); // __type fields type fields name
    expect(errorsOf(query, [maxDepthRule(4)])).toEqual([{ message: 'Query depth limit of 4 exceeded, found 5. (MAX_QUERY_DEPTH)', code: 'LIMIT_EXCEEDED' }]);
  });

  it('judges each operation of a document on its own', () => {
    expect(errorsOf(`query A { viewer { name } } query B ${fieldsOfFields(3)}`, [maxDepthRule(8)])).toHaveLength(1);
  });

  it('resolves each fragment once: a tree of fragments spreading the next twice stays linear', () => {
    const levels = 40; // 2^40 paths if each spread were walked
    const fragments = Array.from({ length: levels }, (_, i) => `fragment F${i} on Query { ...F${i + 1} ...F${i + 1} __typename }`).join('\n');
    const started = performance.now();
    expect(errorsOf(`{ ...F0 } ${fragments} fragment F${levels} on Query { viewer { name } }`, [maxDepthRule(8)])).toEqual([]);
    // Walked per path it would be 2^40 visits (days); resolved once, milliseconds. The
    // bound only has to tell the two apart, on a machine that other work shares.
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it('survives a fragment cycle (NoFragmentCyclesRule reports it)', () => {
    expect(errorsOf('{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }', [maxDepthRule(8)])).toEqual([]);
  });
});

describe('the alias limit', () => {
  it('counts every alias, __typename ones included', () => {
    const aliases = (count: number) => `{ ${Array.from({ length: count }, (_, i) => `a${i}: __typename`).join(' ')} }`;
    expect(errorsOf(aliases(10), herald())).toEqual([]);
    expect(errorsOf(aliases(200), herald())).toEqual([
      { message: 'Aliases limit of 10 exceeded, found 200. (MAX_QUERY_ALIASES)', code: 'LIMIT_EXCEEDED' },
    ]);
  });
});

describe('repeatedFieldsRule', () => {
  const repeated = (count: number, field = 'viewer { name }') => `{ ${field} ${`... on Query { ${field} } `.repeat(count - 1)}}`;

  it(`refuses one response key selected more than ${MAX_FIELD_REPEATS} times in a selection set, inline fragments included`, () => {
    expect(errorsOf(repeated(MAX_FIELD_REPEATS), herald())).toEqual([]);
    expect(errorsOf(repeated(MAX_FIELD_REPEATS + 1), herald())).toEqual([
      { message: `"viewer" is selected more than ${MAX_FIELD_REPEATS} times in one selection set`, code: 'LIMIT_EXCEEDED' },
    ]);
    expect(errorsOf(`{ ${'notifications(first: 1) { pageInfo { hasNextPage } } '.repeat(250)}}`, herald())).toHaveLength(1);
  });

  it('counts nested inline fragments once each: 300 levels cost next to nothing', () => {
    const nested = `{ ${'... on Query { '.repeat(300)}viewer { name }${' }'.repeat(300)} }`;
    const started = performance.now();
    expect(errorsOf(nested, [repeatedFieldsRule(MAX_FIELD_REPEATS)])).toEqual([]);
    // Each level walked again per enclosing level would be 2^300 visits; once each, about a millisecond.
    expect(performance.now() - started).toBeLessThan(2000);
  });
});

describe('the introspection switch', () => {
  it('off: refuses __schema and __type once per document with FORBIDDEN; __typename stays', () => {
    expect(errorsOf('{ __schema { types { name } } a: __type(name: "Query") { name } }', herald(false))).toEqual([
      { message: 'introspection is turned off, so "__schema" cannot be queried (GRAPHQL_INTROSPECTION)', code: 'FORBIDDEN' },
    ]);
    expect(errorsOf('{ __typename }', herald(false))).toEqual([]);
    expect(errorsOf('{ __schema { types { name } } }', herald(true))).toEqual([]);
  });
});
