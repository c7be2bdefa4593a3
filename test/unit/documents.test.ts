/**
 * The document cache: the token limit before anything is built, documents kept only for
 * authenticated requests, the byte bound, and the weight that bound counts being an
 * upper bound of the heap a document holds.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { buildSchema, getIntrospectionQuery, OperationTypeNode, parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import { createDocumentCache, documentWeight } from '../../src/graphql/documents.js';
import { createValidationRules } from '../../src/graphql/rules.js';
import { typeDefs } from '../../src/graphql/schema.js';

const schema = buildSchema(typeDefs);
const rules = createValidationRules({
  maxDepth: 8,
  maxAliases: 10,
  introspection: true,
  operations: [OperationTypeNode.QUERY, OperationTypeNode.SUBSCRIPTION],
  elsewhere: 'elsewhere',
});
const cache = (maxTokens = 1000, maxBytes?: number) =>
  createDocumentCache({ schema, validationRules: rules, maxTokens, ...(maxBytes === undefined ? {} : { maxBytes }) });

/** `count` operations of 4 tokens each, named after `k`. */
const operations = (k: string, count: number) => Array.from({ length: count }, (_, i) => `query q${k}_${i}{__typename}`).join(' ');

describe('the token limit', () => {
  it('refuses a document over MAX_QUERY_TOKENS with LIMIT_EXCEEDED, before building it', () => {
    const documents = cache(100);
    expect(documents.prepare(operations('a', 20), { keep: true }).document).toBeDefined(); // 100 tokens
    const refused = documents.prepare(operations('b', 21), { keep: true });
    expect(refused.errors).toEqual([
      expect.objectContaining({
        message: 'the document has more than 100 tokens (MAX_QUERY_TOKENS); send values as variables',
        extensions: { code: 'LIMIT_EXCEEDED' },
      }),
    ]);
  });

  it('stops the issue’s 64 KB document of 2,700 operations at the limit, without reading the rest', () => {
    const documents = cache();
    let text = '';
    for (let i = 0; text.length < 64_000; i++) text += `query q_${i}{__typename}`;
    // A syntax error at the very end: a parser that read the whole document would report
    // it; one that stopped at MAX_QUERY_TOKENS never gets there. (How long it takes is
    // `bench/documents.ts`' business, not a test's.)
    expect(() => parse(`${text} }`)).toThrow(/Syntax Error/);
    const refused = documents.prepare(`${text} }`, { keep: false });
    expect(refused.errors?.map((error) => error.extensions['code'])).toEqual(['LIMIT_EXCEEDED']);
  });

  it('lets GraphiQL’s schema query through at the default limit', () => {
    const prepared = cache().prepare(getIntrospectionQuery({ descriptions: true, inputValueDeprecation: true, schemaDescription: true }), { keep: false });
    expect(prepared.errors).toBeUndefined();
  });

  it('still reports ordinary syntax errors as they are', () => {
    expect(cache().prepare('{ viewer {', { keep: false }).errors?.[0]?.message).toBe('Syntax Error: Expected Name, found <EOF>.');
  });
});

describe('what the cache keeps', () => {
  it('keeps the document of an authenticated request, and not of an anonymous one', () => {
    const documents = cache();
    const first = documents.prepare('{ viewer { name } }', { keep: false });
    expect(documents.prepare('{ viewer { name } }', { keep: false }).document).not.toBe(first.document);
    expect(documents.bytes).toBe(0);
    const kept = documents.prepare('{ viewer { name } }', { keep: true });
    expect(documents.prepare('{ viewer { name } }', { keep: false }).document).toBe(kept.document);
    expect(documents.bytes).toBeGreaterThan(0);
  });

  it('never keeps a refused document', () => {
    const documents = cache();
    documents.prepare('{ nope }', { keep: true });
    documents.prepare(operations('x', 300), { keep: true });
    expect(documents.bytes).toBe(0);
  });

  it('holds at most maxBytes, by weight, however many documents go through it', () => {
    const documents = cache(1000, 1024 * 1024);
    for (let k = 0; k < 500; k++) {
      expect(documents.prepare(operations(String(k), 200), { keep: true }).document).toBeDefined();
      expect(documents.bytes).toBeLessThanOrEqual(1024 * 1024);
    }
    expect(documents.bytes).toBeGreaterThan(512 * 1024); // it did fill up
  });
});

describe('documentWeight', () => {
  // Heap measured with a forced collection before and after parsing `copies` of a shape.
  // The first parse of a shape also allocates the parser's compiled code and feedback (a
  // one-off the cache does not hold per document), and anything else the worker allocates
  // meanwhile only adds: so the shape is parsed once unmeasured, and the least of three
  // measurements counts.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const heapHeldOnce = (texts: string[]) => {
    gc();
    gc();
    const before = process.memoryUsage().heapUsed;
    const documents = texts.map((text) => parse(text));
    gc();
    gc();
    const held = (process.memoryUsage().heapUsed - before) / texts.length;
    return { held, weight: documentWeight(texts[0] ?? '', documents[0] ?? parse('{a}')) };
  };
  const heapHeldBy = (make: (k: number) => string, copies = 200) => {
    const texts = Array.from({ length: copies }, (_, k) => make(k));
    heapHeldOnce(texts.slice(0, 10));
    const measured = [heapHeldOnce(texts), heapHeldOnce(texts), heapHeldOnce(texts)];
    return measured.reduce((least, next) => (next.held < least.held ? next : least));
  };

  it.each<[string, (k: number) => string]>([
    ['tiny operations', (k) => operations(String(k), 200)],
    ['a subscription', (k) => `subscription S${k} { onNotificationReceived(userName: "alice") { id text timestamp audience sender } }`],
    ['the introspection query', (k) => `${getIntrospectionQuery()} # ${k}`],
    ['nested selections', (k) => `query Q${k}${'{a'.repeat(200)}${'}'.repeat(200)}`],
    ['comments', (k) => `# ${k}\n${'#\n'.repeat(1000)}{a}`],
    ['long strings', (k) => `{ a(x: "${'y'.repeat(3000)}${k}") }`],
    ['unicode escapes', (k) => `{ a(x: "${'\\u00e9'.repeat(500)}${k}") }`],
    ['escapes between short runs', (k) => `{ a(x: "${'ab\\n'.repeat(750)}${k}") }`],
    ['block strings', (k) => `{ a(x: """${'  a\n'.repeat(750)}${k}""") }`],
  ])('is at least the heap one document of %s holds', (_shape, make) => {
    const { held, weight } = heapHeldBy(make);
    expect(held).toBeGreaterThan(0);
    expect(weight).toBeGreaterThanOrEqual(held);
  });
});
