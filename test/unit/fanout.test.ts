/**
 * The fan-out plans: one per operation a rendering can tell apart. Every user subscribes
 * with its own `userName`, so a plan per set of variables was a plan per connection
 * (~0.5 KB each); variables the selection reads still make plans of their own.
 */
import { buildSchema, parse, type GraphQLError, type GraphQLField } from 'graphql';
import { describe, expect, it } from 'vitest';
import { createFanout } from '../../src/graphql/render.js';
import type { Notification } from '../../src/common/notification.js';

const schema = buildSchema(`
  type Notification { text(prefix: String): String }
  type Query { ok: Boolean }
  type Subscription { onNotificationReceived(userName: String!, since: String): Notification }
`);
const fieldOf = (type: string, name: string) =>
  (schema.getType(type) as unknown as { getFields(): Record<string, GraphQLField<unknown, unknown>> }).getFields()[name] as GraphQLField<unknown, unknown>;
fieldOf('Subscription', 'onNotificationReceived').resolve = (item) => item;
fieldOf('Notification', 'text').resolve = (item, args: { prefix?: string }) => `${args.prefix ?? ''}${(item as Notification).text}`;

const item: Notification = { id: 'e1_1000-0', text: 'hi', timestamp: 1, audience: 'USER', sender: 'billing' };
const fanout = createFanout(schema, (callback) => setImmediate(callback), (error) => error as GraphQLError);
const planFor = (query: string, variables: Record<string, unknown>) => fanout.plan({ document: parse(query), query, operationName: undefined, variables });

describe('fan-out plans', () => {
  it('subscriptions that differ only in the subscription field’s own arguments share one plan', () => {
    const query = 'subscription On($userName: String!, $since: String) { onNotificationReceived(userName: $userName, since: $since) { text } }';
    const alice = planFor(query, { userName: 'alice' });
    const bob = planFor(query, { userName: 'bob', since: 'e1_1000-0' });
    expect(bob).toBe(alice);
    expect(JSON.parse(bob.render(item).toString())).toEqual({ data: { onNotificationReceived: { text: 'hi' } } });
  });

  it('variables the selection reads make plans of their own, each rendered with its own', () => {
    const query = 'subscription On($userName: String!, $prefix: String) { onNotificationReceived(userName: $userName) { text(prefix: $prefix) } }';
    const loud = planFor(query, { userName: 'alice', prefix: '! ' });
    const quiet = planFor(query, { userName: 'alice', prefix: '' });
    expect(quiet).not.toBe(loud);
    expect(planFor(query, { userName: 'bob', prefix: '! ' })).toBe(loud);
    expect(JSON.parse(loud.render(item).toString())).toEqual({ data: { onNotificationReceived: { text: '! hi' } } });
    expect(JSON.parse(quiet.render(item).toString())).toEqual({ data: { onNotificationReceived: { text: 'hi' } } });
  });

  it('a variable in a directive on the subscription field counts', () => {
    const query = 'subscription On($userName: String!, $full: Boolean!) { onNotificationReceived(userName: $userName) @include(if: $full) { text } }';
    expect(planFor(query, { userName: 'a', full: true })).not.toBe(planFor(query, { userName: 'a', full: false }));
  });
});
