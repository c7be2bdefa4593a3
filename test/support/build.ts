/**
 * The compiled build the image runs (`npm run build` → dist/), made before the tests
 * that start `node dist/main.js` need it: vitest's global setup calls
 * {@link ensureBuilt} once per run, so `npm test` passes on a fresh clone.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** What the build reads: a change to any of them makes dist/ stale. */
const INPUTS = ['src', 'tsconfig.json', 'tsconfig.build.json'];
/** What @herald/client's build reads (`tsc -p packages/client` → packages/client/dist/). */
const CLIENT_INPUTS = ['packages/client/src', 'packages/client/tsconfig.json', 'tsconfig.json'];

/** Runs the build's own command (without npm in between) when dist/ is missing or older than a source. */
export function ensureBuilt(): void {
  buildWhenStale('dist/main.js', INPUTS, 'tsconfig.build.json');
  // The client tests' runner processes import the package as an app does: `@herald/client`, its dist/.
  buildWhenStale('packages/client/dist/index.js', CLIENT_INPUTS, 'packages/client');
}

function buildWhenStale(output: string, inputs: readonly string[], project: string): void {
  const built = modifiedAt(join(ROOT, output));
  const newestInput = Math.max(...inputs.map((input) => newestIn(join(ROOT, input))));
  if (built !== undefined && built >= newestInput) return;
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-p', project], { cwd: ROOT, stdio: 'inherit' });
}

function modifiedAt(path: string): number | undefined {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return undefined;
  }
}

/** The latest modification time of `path`, or of any file under it. */
function newestIn(path: string): number {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return Math.max(stat.mtimeMs, ...readdirSync(path).map((entry) => newestIn(join(path, entry))));
}
