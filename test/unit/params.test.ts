/** The parameters of a GraphQL request over HTTP: every malformed one named, never echoed. */
import { describe, expect, it } from 'vitest';
import { BadRequestError, paramsFromJson, paramsFromSearch } from '../../src/graphql/params.js';

const refusal = (read: () => unknown): string => {
  try {
    read();
  } catch (error) {
    expect(error).toBeInstanceOf(BadRequestError);
    return (error as Error).message;
  }
  throw new Error('accepted');
};

describe('paramsFromJson', () => {
  it.each([
    ['\u202Enot json', 'the body is not valid JSON'],
    ['', 'the body is not valid JSON'],
    ['null', 'the body must be a JSON object, not null'],
    ['[{"query":"{a}"}]', 'the body must be a JSON object, not an array'],
    ['1e999', 'the body must be a JSON object, not a number'],
    ['"{ a }"', 'the body must be a JSON object, not a string'],
    ['{}', '"query" is missing'],
    ['{"query":null}', '"query" is missing'],
    ['{"query":5}', '"query" must be a string, not a number'],
    ['{"query":{"x":1}}', '"query" must be a string, not an object'],
    ['{"query":"  "}', '"query" is empty'],
    ['{"query":"{a}","variables":[]}', '"variables" must be an object, not an array'],
    ['{"query":"{a}","variables":"{}"}', '"variables" must be an object, not a string'],
    ['{"query":"{a}","operationName":true}', '"operationName" must be a string, not a boolean'],
    ['{"query":"{a}","extensions":[1]}', '"extensions" must be an object, not an array'],
  ])('refuses %j: %s', (body, message) => {
    expect(refusal(() => paramsFromJson(body))).toBe(message);
  });

  it('reads a well-formed body; null parameters count as absent', () => {
    expect(paramsFromJson('{"query":"{a}","variables":null,"operationName":null,"extensions":{"x":1}}')).toEqual({
      query: '{a}',
      variables: undefined,
      operationName: undefined,
      extensions: { x: 1 },
    });
  });
});

describe('paramsFromSearch', () => {
  it('reads query, operationName and JSON variables, and names a bad one', () => {
    expect(paramsFromSearch(new URLSearchParams({ query: '{a}', variables: '{"n":1}', operationName: 'A' }))).toEqual({
      query: '{a}',
      variables: { n: 1 },
      operationName: 'A',
      extensions: undefined,
    });
    expect(refusal(() => paramsFromSearch(new URLSearchParams({ query: '{a}', variables: '{bad' })))).toBe('"variables" is not valid JSON');
    expect(refusal(() => paramsFromSearch(new URLSearchParams({})))).toBe('"query" is missing');
  });
});
