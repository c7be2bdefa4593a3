/**
 * The fan-out's direct rendering (CPU per delivery): a plain selection of a notification is
 * written without `execute`, byte for byte what `execute` gives; everything else is left
 * to `execute`.
 */
import { buildSchema, execute, parse, type GraphQLField } from 'graphql';
import { describe, expect, it } from 'vitest';
import { compileDirectRender } from '../../src/graphql/direct-render.js';
import { resolveItem, typeDefs } from '../../src/graphql/schema.js';
import type { Notification, SubscriptionItem } from '../../src/common/notification.js';

const schema = buildSchema(typeDefs);
const subscriptionField = (name: string) =>
  (schema.getSubscriptionType()?.getFields() as Record<string, GraphQLField<unknown, unknown>>)[name] as GraphQLField<unknown, unknown>;
subscriptionField('onNotificationReceived').resolve = resolveItem as NonNullable<GraphQLField<unknown, unknown>['resolve']>;
subscriptionField('onInboxEvent').resolve = resolveItem as NonNullable<GraphQLField<unknown, unknown>['resolve']>;

const item: Notification = { id: 'e1_1000-0', text: 'say "hi" \u2028 ✓', timestamp: 1_700_000_000, audience: 'STORE', sender: 'billing' };
const executed = (query: string, rendered: SubscriptionItem) => JSON.stringify(execute({ schema, document: parse(query), rootValue: rendered, contextValue: {}, variableValues: { u: 'a' } }));
const direct = (query: string) => compileDirectRender(schema, parse(query), undefined);

describe('direct rendering', () => {
  it.each([
    'subscription { onNotificationReceived(userName: "a") { id text timestamp audience sender } }',
    'subscription { onNotificationReceived(userName: "a") { text } }',
    'subscription S($u: String!) { bell: onNotificationReceived(userName: $u) { sender when: timestamp __typename t: text } }',
  ])('writes what execute writes: %s', (query) => {
    const render = direct(query);
    expect(render).toBeDefined();
    expect(render?.(item)).toBe(executed(query, item));
  });

  it.each([
    ['a fragment', 'subscription { onNotificationReceived(userName: "a") { ...F } } fragment F on Notification { text }'],
    ['an inline fragment', 'subscription { onNotificationReceived(userName: "a") { ... on Notification { text } } }'],
    ['a directive on a subfield', 'subscription { onNotificationReceived(userName: "a") { text @include(if: true) } }'],
    ['a directive on the root field', 'subscription { onNotificationReceived(userName: "a") @skip(if: false) { text } }'],
    ['a key selected twice', 'subscription { onNotificationReceived(userName: "a") { text text } }'],
    ['a union (the inbox)', 'subscription { onInboxEvent(userName: "a") { ... on Notification { text } } }'],
    ['a query', '{ viewer { name } }'],
  ])('leaves %s to execute', (_what, query) => {
    expect(direct(query)).toBeUndefined();
  });

  it('leaves to execute an item it cannot show exactly: a gap, a missing non-null field, an ill-typed one', () => {
    const render = direct('subscription { onNotificationReceived(userName: "a") { id timestamp } }');
    expect(render?.({ gap: 'e1_1-0' })).toBeUndefined();
    expect(render?.({ ...item, id: undefined } as unknown as Notification)).toBeUndefined();
    expect(render?.({ ...item, timestamp: 1.5 })).toBeUndefined();
    expect(render?.(item)).toBe('{"data":{"onNotificationReceived":{"id":"e1_1000-0","timestamp":1700000000}}}');
  });
});
