/**
 * Builds the inbox page into `examples/inbox/dist/`: the app, `@herald/client` (from its
 * source, through the paths of `examples/inbox/tsconfig.json`) and the graphql-ws client
 * bundled by esbuild into one ES module, beside the HTML and CSS. Nothing is fetched at
 * run time. `npm start` runs it before the servers start (`npm run build:inbox`), and
 * the tests' global setup does too; the output is not committed.
 */
import { copyFile, mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const HERE = fileURLToPath(new URL('.', import.meta.url));
export const INBOX_DIST = `${HERE}dist`;

export async function buildInbox(): Promise<void> {
  await mkdir(INBOX_DIST, { recursive: true });
  await build({
    entryPoints: [`${HERE}src/main.ts`],
    tsconfig: `${HERE}tsconfig.json`,
    outfile: `${INBOX_DIST}/inbox.js`,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    sourcemap: 'linked',
    legalComments: 'none',
    logLevel: 'warning',
  });
  await Promise.all(['index.html', 'inbox.css', 'favicon.svg'].map((file) => copyFile(`${HERE}${file}`, `${INBOX_DIST}/${file}`)));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await buildInbox();
}
