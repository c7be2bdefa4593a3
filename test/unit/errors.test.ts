/**
 * The one error mask: client-facing errors pass (cleaned), anything else is hidden in
 * production and logged once; unsafe characters never pass.
 */
import { GraphQLError, parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import { createErrorMask, graphqlError } from '../../src/common/errors.js';
import { escapeBidiControls, escapeControlCharacters } from '../../src/common/unsafe-text.js';

function maskWithLog(production: boolean) {
  const logged: string[] = [];
  const logger = { info: () => undefined, warn: () => undefined, error: (...args: unknown[]) => logged.push(args.join(' ')) };
  return { mask: createErrorMask({ production, logger }), logged };
}

describe('escapeControlCharacters', () => {
  it('writes C0, C1, bidirectional controls and line separators as \\u escapes, and nothing else', () => {
    expect(escapeControlCharacters('a\u202Eb\u2066c\u2069d\u200Fe\u061Cf')).toBe('a\\u202eb\\u2066c\\u2069d\\u200fe\\u061cf');
    expect(escapeControlCharacters('\u0000\n\u001b[31m\u007f\u0085\u009f\u2028')).toBe('\\u0000\\u000a\\u001b[31m\\u007f\\u0085\\u009f\\u2028');
    expect(escapeControlCharacters('déjà vu — “ok” 名前 🙂')).toBe('déjà vu — “ok” 名前 🙂');
  });

  it('escapeBidiControls: the bidirectional controls only, for text a page shows (line breaks kept)', () => {
    const controls = [0x061c, 0x200e, 0x200f, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069];
    expect(escapeBidiControls(String.fromCharCode(...controls))).toBe(controls.map((code) => `\\u${code.toString(16).padStart(4, '0')}`).join(''));
    expect(escapeBidiControls('invoice \u202Egnp.exe\nline 2 \u05e9\u05dc\u05d5\u05dd')).toBe('invoice \\u202egnp.exe\nline 2 \u05e9\u05dc\u05d5\u05dd');
  });
});

describe('createErrorMask', () => {
  it('passes a client-facing error as it is, unlogged', () => {
    const { mask, logged } = maskWithLog(true);
    const error = graphqlError('FORBIDDEN', 'you may only subscribe to your own notifications ("alice")');
    expect(mask(error)).toBe(error);
    expect(logged).toEqual([]);
  });

  it('cuts graphql-js suggestions in production only, keeping code and locations', () => {
    const document = parse('{ viewr { name } }');
    const error = new GraphQLError('Cannot query field "viewr" on type "Query". Did you mean "viewer"?', {
      nodes: document.definitions,
      extensions: { code: 'GRAPHQL_VALIDATION_FAILED' },
    });
    expect(maskWithLog(true).mask(error).toJSON()).toEqual({
      message: 'Cannot query field "viewr" on type "Query".',
      locations: [{ line: 1, column: 1 }],
      extensions: { code: 'GRAPHQL_VALIDATION_FAILED' },
    });
    expect(maskWithLog(false).mask(error)).toBe(error);
    const several = new GraphQLError('Value "USR" does not exist in "Audience" enum. Did you mean the enum value "USER", "STORE", or "COMPANY"?');
    expect(maskWithLog(true).mask(several).message).toBe('Value "USR" does not exist in "Audience" enum.');
  });

  it('escapes what a client sent back to it, in every environment', () => {
    const error = graphqlError('BAD_USER_INPUT', 'userName "\u202Eecila" may only hold letters');
    for (const production of [true, false]) {
      expect(maskWithLog(production).mask(error).toJSON()).toEqual({ message: 'userName "\\u202eecila" may only hold letters', extensions: { code: 'BAD_USER_INPUT' } });
    }
  });

  it('keeps only `code` (and `http`) of a client-facing error’s extensions', () => {
    const yogaStyle = new GraphQLError('POST body sent invalid JSON.', {
      extensions: { code: 'BAD_REQUEST', http: { status: 400 }, originalError: { name: 'SyntaxError', message: 'Unexpected token \u202E' } },
    });
    expect(maskWithLog(true).mask(yogaStyle).extensions).toEqual({ code: 'BAD_REQUEST', http: { status: 400 } });
  });

  it('hides an unexpected error in production as INTERNAL_SERVER_ERROR, logged once with its stack', () => {
    const { mask, logged } = maskWithLog(true);
    const fault = new Error('WRONGTYPE Operation against a key holding the wrong kind of value. script: 83cda2e6');
    const wrapped = new GraphQLError(fault.message, { originalError: fault, path: ['onNotificationReceived'] });
    const masked = mask(wrapped);
    expect(masked.toJSON()).toEqual({ message: 'Unexpected error.', path: ['onNotificationReceived'], extensions: { code: 'INTERNAL_SERVER_ERROR' } });
    expect(logged).toHaveLength(1);
    expect(logged[0]).toContain('WRONGTYPE');
    expect(logged[0]).toContain('errors.test.ts'); // the stack
    // What the mask returned passes again unchanged and unlogged.
    expect(mask(masked)).toBe(masked);
    expect(mask(new Error('raw'))).toMatchObject({ message: 'Unexpected error.', extensions: { code: 'INTERNAL_SERVER_ERROR' } });
    expect(mask('a string thrown')).toMatchObject({ message: 'Unexpected error.' });
    expect(logged).toHaveLength(3);
  });

  it('shows an unexpected error’s message outside production, escaped, with the same code', () => {
    const { mask, logged } = maskWithLog(false);
    expect(mask(new Error('boom\u001b[2J')).toJSON()).toEqual({ message: 'boom\\u001b[2J', extensions: { code: 'INTERNAL_SERVER_ERROR' } });
    expect(logged).toHaveLength(1);
  });
});
