/**
 * @herald/client's core entry, as an app ships it: bundled with esbuild (minified,
 * graphql-ws bundled in, for a browser), then gzipped. The bound: 12 KB.
 */
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { expect, it } from 'vitest';

const ENTRY = fileURLToPath(new URL('../../packages/client/src/index.ts', import.meta.url));
const BOUND_BYTES = 12 * 1024;

it('the core entry is at most 12 KB min+gzip', async () => {
  const result = await build({ entryPoints: [ENTRY], bundle: true, minify: true, format: 'esm', platform: 'browser', target: 'es2022', write: false, logLevel: 'silent' });
  const code = result.outputFiles[0]?.contents ?? new Uint8Array();
  const gzipped = gzipSync(code, { level: 9 }).length;
  console.log(`@herald/client core entry: ${code.length} bytes minified, ${gzipped} bytes (${(gzipped / 1024).toFixed(1)} KB) min+gzip (bound ${BOUND_BYTES})`);
  expect(gzipped).toBeLessThanOrEqual(BOUND_BYTES);
});
