/** The subscribe server's choice between an event stream and JSON: by Accept, then by operation. */
import { describe, expect, it } from 'vitest';
import { negotiate, operationKind, parseAccept } from '../../src/transports/http/negotiation.js';

/** What urql's default `fetchExchange` sends with a query or a mutation (@urql/core 6). */
const URQL_QUERY = 'application/graphql-response+json, application/graphql+json, application/json, text/event-stream, multipart/mixed';
/** …and with a subscription, when `fetchSubscriptions` is on. */
const URQL_SUBSCRIPTION = 'text/event-stream, multipart/mixed';

describe('negotiate', () => {
  it.each([
    // Both acceptable, JSON preferred: the operation decides.
    [URQL_QUERY, 'by-operation'],
    ['application/json, text/event-stream', 'by-operation'],
    ['text/event-stream;q=0.9, application/graphql-response+json', 'by-operation'],
    ['text/event-stream;q=0.5, */*', 'by-operation'],
    ['application/*, text/event-stream', 'by-operation'],
    // A stream whatever the operation: preferred, or the only type Herald serves.
    [URQL_SUBSCRIPTION, 'event-stream'],
    ['text/event-stream', 'event-stream'],
    ['TEXT/Event-Stream; charset=utf-8', 'event-stream'],
    ['text/event-stream, application/json', 'event-stream'],
    ['application/json;q=0.5, text/event-stream', 'event-stream'],
    ['application/json;q=0, text/event-stream;q=0.1', 'event-stream'],
    ['text/event-stream, */*;q=0.8', 'event-stream'],
    ['text/html, text/event-stream', 'event-stream'],
    // JSON: no stream named, or refused.
    [undefined, 'json'],
    ['', 'json'],
    ['*/*', 'json'],
    ['text/*', 'json'],
    ['application/graphql-response+json, application/json', 'json'],
    ['text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8', 'json'],
    ['application/json, text/event-stream;q=0', 'json'],
    ['text/event-stream;q=0', 'json'],
    // A malformed range counts as absent.
    ['text/event-stream;q=2, application/json', 'json'],
    ['text/event-stream/x, application/json', 'json'],
    ['application/json, text/event-stream;q=abc', 'json'],
  ] as const)('%j → %s', (accept, expected) => {
    expect(negotiate(accept)).toBe(expected);
  });

  it('takes the most specific range for each type: application/json;q=0 with */* refuses JSON', () => {
    expect(negotiate('application/json;q=0, application/graphql-response+json;q=0, */*, text/event-stream;q=0.1')).toBe('event-stream');
    expect(negotiate('application/json;q=0, */*, text/event-stream;q=0.1')).toBe('by-operation');
  });
});

describe('parseAccept', () => {
  it('reads each range with its weight and position, skipping malformed ones', () => {
    expect(parseAccept('Application/JSON;charset=utf-8;q=0.5 , bad, */*;q=0.1, text/*;q=1.000')).toEqual([
      { type: 'application', subtype: 'json', q: 0.5, position: 0 },
      { type: '*', subtype: '*', q: 0.1, position: 2 },
      { type: 'text', subtype: '*', q: 1, position: 3 },
    ]);
    expect(parseAccept('*/json, text/plain;q=1.5, a/b;q=0.1234')).toEqual([]);
  });
});

describe('operationKind', () => {
  const params = (query: string, operationName?: string) => ({ query, operationName, variables: undefined, extensions: undefined });

  it('reads the kind of the operation the request names', () => {
    expect(operationKind(params('{ viewer { name } }'), 100)).toBe('query');
    expect(operationKind(params('mutation { follow(topic: "x") }'), 100)).toBe('mutation');
    expect(operationKind(params('subscription S { onNotificationReceived(userName: "a") { id } }'), 100)).toBe('subscription');
    const two = 'query Q { viewer { name } } subscription S { onNotificationReceived(userName: "a") { id } }';
    expect(operationKind(params(two, 'S'), 100)).toBe('subscription');
    expect(operationKind(params(two, 'Q'), 100)).toBe('query');
  });

  it('says nothing of a document that does not parse, names no operation it holds, or is past MAX_QUERY_TOKENS', () => {
    expect(operationKind(params('subscription {'), 100)).toBeUndefined();
    expect(operationKind(params('query Q { a } subscription S { b }'), 100)).toBeUndefined();
    expect(operationKind(params('subscription S { b }', 'T'), 100)).toBeUndefined();
    expect(operationKind(params(`subscription { ${'a '.repeat(200)} }`), 100)).toBeUndefined();
  });
});
