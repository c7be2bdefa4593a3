/**
 * `npx tsx bench/documents.ts [tokens…]`: the worst documents an anonymous client can
 * send at a token limit, and what parsing and validating one costs the event loop.
 *
 * Each shape is built just under the limit, with fresh names every run (nothing is
 * cached), and prepared as the servers prepare a request: `parse` with `maxTokens`,
 * then Herald's rules and GraphQL's. Prints, in ms, the median CPU time of the runs (the
 * work itself, whatever else the machine is doing), their median wall time and the
 * worst wall time.
 *
 *   npx tsx bench/documents.ts            # at the default MAX_QUERY_TOKENS
 *   npx tsx bench/documents.ts 1000 4000  # at other limits
 */
import { buildSchema, OperationTypeNode } from 'graphql';
import { readConfig } from '../src/config/index.js';
import { createDocumentCache } from '../src/graphql/documents.js';
import { createValidationRules } from '../src/graphql/rules.js';
import { typeDefs } from '../src/graphql/schema.js';

/** A document of about `tokens` tokens; `k` makes its names fresh. */
type Shape = (tokens: number, k: number) => string;

const repeat = (count: number, make: (i: number) => string, separator = ' '): string =>
  Array.from({ length: Math.max(1, Math.floor(count)) }, (_, i) => make(i)).join(separator);

/** The shapes, each with the tokens one repetition costs. */
export const WORST_SHAPES: Record<string, Shape> = {
  // the issue's reproduction: ~5 tokens an operation
  operations: (n, k) => repeat(n / 5, (i) => `query q${k}_${i}{__typename}`, ''),
  // spread from one operation: 2 + 7 tokens a fragment
  fragments: (n, k) => `{${repeat(n / 9, (i) => `...f${k}_${i}`)}} ${repeat(n / 9, (i) => `fragment f${k}_${i} on Query{__typename}`)}`,
  // each fragment spreads the next
  fragmentChain: (n, k) => `{...f${k}_0} ${repeat(n / 8, (i) => `fragment f${k}_${i} on Query{...f${k}_${i + 1}}`)} fragment f${k}_${Math.floor(n / 8)} on Query{__typename}`,
  // fragments that all select the same fields, compared pairwise for overlap
  overlappingFragments: (n, k) =>
    `{${repeat(n / 14, (i) => `...f${k}_${i}`)}} ${repeat(n / 14, (i) => `fragment f${k}_${i} on Query{viewer{name tenant stores}}`)}`,
  // one field repeated: every pair is compared
  sameField: (n, k) => `query q${k}{${repeat(n / 4, () => 'viewer{name}')}}`,
  // the same response name on different fields: conflicts
  conflictingFields: (n, k) => `query q${k}{${repeat(n / 7, (i) => (i % 2 ? 'a:viewer{name}' : 'a:notifications{pageInfo{hasNextPage}}'))}}`,
  // same field, different arguments
  conflictingArguments: (n, k) => `query q${k}{${repeat(n / 11, (i) => `notifications(first:${i}){pageInfo{hasNextPage}}`)}}`,
  // inline fragments nested as deep as the tokens allow
  nestedInlineFragments: (n, k) => `query q${k}${'{...on Query'.repeat(n / 4)}{viewer{name}}${'}'.repeat(n / 4)}`,
  // unknown fields nested as deep as the tokens allow
  nestedFields: (n, k) => `query q${k}${'{a'.repeat(n / 2)}${'}'.repeat(n / 2)}`,
  directives: (n, k) => `query q${k}{__typename ${repeat(n / 7, () => '@include(if:true)')}}`,
  unusedVariables: (n, k) => `query q${k}(${repeat(n / 4, (i) => `$v${i}:Int`)}){__typename}`,
  usedVariables: (n, k) => `query q${k}($v:Int){${repeat(n / 7, () => 'notifications(first:$v){pageInfo{hasNextPage}}')}}`,
  arguments: (n, k) => `query q${k}{notifications(${repeat(n / 3, () => 'first:1')}){pageInfo{hasNextPage}}}`,
  nestedList: (n, k) => `query q${k}{notifications(first:${'['.repeat(n / 2)}1${']'.repeat(n / 2)}){pageInfo{hasNextPage}}}`,
  aliases: (n, k) => `query q${k}{${repeat(n / 3, (i) => `a${i}:__typename`)}}`,
  introspection: (n, k) => `query q${k}{__schema{types{${repeat(n / 10, () => 'fields{type{name kind}}')}}}}`,
};

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

function main(): void {
  const limits = readConfig({}).limits;
  const argv = process.argv.slice(2).map(Number).filter((n) => n > 0);
  const schema = buildSchema(typeDefs);
  for (const maxTokens of argv.length > 0 ? argv : [limits.maxQueryTokens]) {
    const documents = createDocumentCache({
      schema,
      maxTokens,
      validationRules: createValidationRules({
        maxDepth: limits.maxQueryDepth,
        maxAliases: limits.maxQueryAliases,
        introspection: false,
        operations: [OperationTypeNode.QUERY, OperationTypeNode.SUBSCRIPTION],
        elsewhere: 'elsewhere',
      }),
    });
    console.log(`MAX_QUERY_TOKENS=${maxTokens}: parse + validate of one document, ms (CPU median, wall median / worst of 40)`);
    for (const [name, shape] of Object.entries(WORST_SHAPES)) {
      // Just under the limit: shrink until it parses.
      let budget = maxTokens;
      while (documents.prepare(shape(budget, 999_999), { keep: false }).errors?.[0]?.message.includes('MAX_QUERY_TOKENS')) budget = Math.floor(budget * 0.97);
      for (let k = 0; k < 10; k++) documents.prepare(shape(budget, 1000 + k), { keep: false }); // warm up
      const times: number[] = [];
      const cpuTimes: number[] = [];
      let outcome = '';
      for (let k = 0; k < 40; k++) {
        const text = shape(budget, k);
        const cpu = process.cpuUsage();
        const started = performance.now();
        const prepared = documents.prepare(text, { keep: false });
        times.push(performance.now() - started);
        const used = process.cpuUsage(cpu);
        cpuTimes.push((used.user + used.system) / 1000);
        outcome = prepared.errors ? `${prepared.errors.length} error(s): ${prepared.errors[0]?.message.slice(0, 60)}` : 'valid';
      }
      const figures = `${median(cpuTimes).toFixed(2).padStart(6)}  ${median(times).toFixed(2).padStart(6)} / ${Math.max(...times).toFixed(2).padStart(6)}`;
      console.log(`  ${name.padEnd(22)} ${String(shape(budget, 0).length).padStart(6)} B  ${figures}  ${outcome}`);
    }
  }
}

main();
