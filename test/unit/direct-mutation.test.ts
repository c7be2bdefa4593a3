/**
 * The publish server's compiled mutations (CPU per publish): a plain mutation runs without
 * `execute`, with the schema's resolver, and answers exactly what `execute` answers —
 * results, a resolver's failures, leaves that cannot be shown — while variables or
 * arguments `execute` would refuse are left to `execute`, before anything runs.
 */
import { buildSchema, execute, parse, type GraphQLField, type GraphQLResolveInfo } from 'graphql';
import { beforeEach, describe, expect, it } from 'vitest';
import { compileDirectMutation } from '../../src/graphql/direct-mutation.js';
import { typeDefs } from '../../src/graphql/schema.js';
import { selectsSubfield } from '../../src/graphql/selection.js';

const schema = buildSchema(typeDefs);
const sendNotification = schema.getMutationType()?.getFields()['sendNotification'] as GraphQLField<unknown, unknown>;
/** What the resolver does next; by default it echoes what it was given, so that a wrong argument or info shows. */
let behaviour: (args: Record<string, unknown>, context: unknown, info: GraphQLResolveInfo) => unknown;
let calls = 0;
sendNotification.resolve = (_root, args, context, info) => {
  calls += 1;
  return behaviour(args, context, info);
};
const echo = (args: Record<string, unknown>, context: unknown, info: GraphQLResolveInfo) =>
  Promise.resolve({
    id: JSON.stringify({ args, context, path: info.path, variables: info.variableValues, operation: info.operation.name?.value ?? null }),
    duplicate: selectsSubfield(info, 'receivedUsers'),
    receivedUsers: 3,
  });
beforeEach(() => {
  behaviour = echo;
  calls = 0;
});

const context = { principal: 'p' };
const viaExecute = async (query: string, variables?: Record<string, unknown>, operationName?: string) =>
  JSON.stringify(await execute({ schema, document: parse(query), contextValue: context, variableValues: variables, operationName }));
const viaDirect = async (query: string, variables?: Record<string, unknown>, operationName?: string) => {
  const direct = compileDirectMutation(schema, parse(query), operationName);
  expect(direct).toBeDefined();
  const result = direct?.(variables, context);
  expect(result).toBeDefined();
  return JSON.stringify(await result);
};
/** Runs both ways; the resolver runs once for each. */
const both = async (query: string, variables?: Record<string, unknown>, operationName?: string) => {
  const executed = await viaExecute(query, variables, operationName);
  const direct = await viaDirect(query, variables, operationName);
  expect(calls).toBe(2);
  return { executed, direct };
};

const SEND = 'mutation Send($to: String!, $text: String!) { sendNotification(to: $to, text: $text) { id receivedUsers } }';

describe('a compiled mutation', () => {
  it.each<[string, string, Record<string, unknown> | undefined, string | undefined]>([
    ['variables', SEND, { to: 'bob', text: 'hi' }, undefined],
    ['literals, an enum, a default', 'mutation { sendNotification(to: "bob", text: "hi", push: ALWAYS, ttl: 60) { id duplicate receivedUsers } }', undefined, undefined],
    ['enum and Int variables, an omitted nullable one', 'mutation M($a: Audience!, $p: PushPriority, $t: Int) { sendNotification(to: "s1", text: "x", audience: $a, priority: $p, ttl: $t) { id } }', { a: 'STORE', p: 'HIGH' }, undefined],
    ['aliases and __typename', 'mutation { sent: sendNotification(to: "bob", text: "hi") { __typename n: receivedUsers key: id dup: duplicate } }', undefined, undefined],
    ['one named operation of several', `${SEND} mutation Other { sendNotification(to: "x", text: "y") { id } }`, { to: 'bob', text: 'hi' }, 'Send'],
    ['a variable with a default', 'mutation ($to: String = "carol") { sendNotification(to: $to, text: "hi") { id } }', {}, undefined],
    ['null and absent nullable variables, an absent one for an argument with a default', 'mutation ($k: String, $c: String, $a: Audience, $id: ID) { sendNotification(to: "b", text: "t", idempotencyKey: $k, collapseKey: $c, audience: $a, category: $id) { id } }', { k: null, id: 'x1' }, undefined],
    ['a literal null for a nullable argument', 'mutation { sendNotification(to: "b", text: "t", idempotencyKey: null, critical: true) { id } }', undefined, undefined],
    ['extra variables nobody declared', SEND, { to: 'bob', text: 'hi', extra: { deep: [1] } }, undefined],
  ])('answers what execute answers: %s', async (_what, query, variables, operationName) => {
    const { executed, direct } = await both(query, variables, operationName);
    expect(direct).toBe(executed);
    expect(direct).toContain('"data":{');
  });

  it.each<[string, typeof behaviour]>([
    ['a resolver that throws', () => {
      throw Object.assign(new Error('not allowed'), { extensions: { code: 'FORBIDDEN' } });
    }],
    ['a resolver that rejects', () => Promise.reject(new Error('Redis is unavailable'))],
    ['a null result', () => null],
    ['an Error as the result', () => new Error('returned, not thrown')],
    ['a null non-null leaf', () => ({ id: null, receivedUsers: 1 })],
    ['a leaf its type cannot serialize', () => ({ id: 'a', receivedUsers: 1.5 })],
    ['an Error as a leaf', () => ({ id: new Error('no id'), receivedUsers: 1 })],
  ])('fails as execute fails: %s', async (_what, failing) => {
    behaviour = failing;
    const { executed, direct } = await both(SEND, { to: 'bob', text: 'hi' });
    expect(direct).toBe(executed);
    expect(JSON.parse(direct)).toMatchObject({ data: null, errors: [expect.objectContaining({ message: expect.any(String) })] });
  });

  it.each<[string, Record<string, unknown> | undefined]>([
    ['a missing variable', { to: 'bob' }],
    ['a variable of the wrong type', { to: 'bob', text: 5 }],
    ['an enum value the type lacks', { to: 'bob', text: 'hi', a: 'EVERYONE' }],
    ['a number for a String', { to: 7, text: 'hi' }],
    ['null for a non-null String', { to: null, text: 'hi' }],
  ])('leaves %s to execute, running nothing', (_what, variables) => {
    const direct = compileDirectMutation(schema, parse('mutation ($to: String!, $text: String!, $a: Audience) { sendNotification(to: $to, text: $text, audience: $a) { id } }'), undefined);
    expect(direct?.(variables, context)).toBeUndefined();
    expect(calls).toBe(0);
  });

  it.each([
    ['a fragment', 'mutation { sendNotification(to: "b", text: "t") { ...F } } fragment F on SendResult { id }'],
    ['an inline fragment', 'mutation { sendNotification(to: "b", text: "t") { ... on SendResult { id } } }'],
    ['a directive on a leaf', 'mutation { sendNotification(to: "b", text: "t") { id @include(if: true) } }'],
    ['a directive on the root field', 'mutation { sendNotification(to: "b", text: "t") @skip(if: false) { id } }'],
    ['two root fields', 'mutation { a: sendNotification(to: "b", text: "t") { id } b: sendNotification(to: "c", text: "t") { id } }'],
    ['a key selected twice', 'mutation { sendNotification(to: "b", text: "t") { id id } }'],
    ['a list result (sendNotifications)', 'mutation { sendNotifications(notifications: [{ to: "b", text: "t" }]) { id } }'],
    ['a query', '{ viewer { name } }'],
  ])('is not compiled for %s', (_what, query) => {
    expect(compileDirectMutation(schema, parse(query), undefined)).toBeUndefined();
  });
});
