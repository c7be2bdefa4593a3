/**
 * The layer rule of docs/architecture.md: a module imports only from its own layer or
 * layers below it, and no import cycle exists (`npm run cycles` asks madge
 * the same). Read from the sources' import statements, so a new module is checked as
 * soon as it exists, and one that fits no layer fails until it is given one.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

/**
 * The layers, bottom up, each a folder of src/ (the entry points stand in src/ itself).
 * A module's layer is its folder's: a newcomer tells a file's layer from its path.
 */
const LAYERS = ['common', 'names', 'config', 'auth', 'redis', 'ledger', 'broker', 'preferences', 'push', 'core', 'graphql', 'transports', 'servers', 'main'] as const;

function layerOf(module: string): number {
  const folder = module.includes('/') ? module.slice(0, module.indexOf('/')) : 'main';
  return (LAYERS as readonly string[]).indexOf(folder);
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : [],
  );
}

/** Each module (relative to src/) and the modules of src/ it imports. */
const graph = new Map(
  sources(SRC).map((file) => {
    const text = readFileSync(file, 'utf8');
    const specifiers = [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)].map((match) => match[1] ?? '');
    const imports = specifiers.map((specifier) => relative(SRC, resolve(dirname(file), specifier)).replace(/\.js$/, '.ts'));
    return [relative(SRC, file), imports] as const;
  }),
);

type Graph = ReadonlyMap<string, readonly string[]>;

/** Each import that runs up a layer, described. */
function upwardImports(modules: Graph): string[] {
  const upward: string[] = [];
  for (const [module, imports] of modules) {
    for (const imported of imports) {
      if (layerOf(imported) > layerOf(module)) {
        upward.push(`${module} (${LAYERS[layerOf(module)]}) imports ${imported} (${LAYERS[layerOf(imported)]})`);
      }
    }
  }
  return upward;
}

/** Each import cycle found, as `a → b → a`. */
function cycles(modules: Graph): string[] {
  const found: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const visit = (module: string, path: readonly string[]): void => {
    if (state.get(module) === 'done') return;
    if (state.get(module) === 'open') {
      found.push([...path.slice(path.indexOf(module)), module].join(' → '));
      return;
    }
    state.set(module, 'open');
    for (const imported of modules.get(module) ?? []) visit(imported, [...path, module]);
    state.set(module, 'done');
  };
  for (const module of modules.keys()) visit(module, []);
  return found;
}

describe('layers', () => {
  it('places every module of src/ in a layer', () => {
    expect([...graph.keys()].filter((module) => layerOf(module) < 0)).toEqual([]);
  });

  it('lets no module import from a layer above its own', () => {
    expect(upwardImports(graph)).toEqual([]);
  });

  it('has no import cycle', () => {
    expect(cycles(graph)).toEqual([]);
  });

  it('lets no server import another: each is wired from the layers below, and only the wiring sees them all', () => {
    const across = [...graph].flatMap(([module, imports]) =>
      module.startsWith('servers/') && module !== 'servers/herald.ts'
        ? imports.filter((imported) => imported.startsWith('servers/')).map((imported) => `${module} imports ${imported}`)
        : [],
    );
    expect(across).toEqual([]);
  });

  it('keeps every module of src/ under 400 lines: one job each, readable whole', () => {
    const long = sources(SRC).flatMap((file) => {
      const lines = readFileSync(file, 'utf8').trimEnd().split('\n').length;
      return lines > 400 ? [`${relative(SRC, file)}: ${lines} lines`] : [];
    });
    expect(long).toEqual([]);
  });

  it('sees an upward import and a cycle when there is one (the check itself)', () => {
    expect(graph.get('transports/websocket/websocket.ts')).toContain('core/subscriptions.ts'); // imports are read
    const broken = new Map([
      ['auth/policy.ts', ['auth/tokens.ts']],
      ['auth/tokens.ts', ['auth/policy.ts']],
    ]);
    expect(upwardImports(new Map([['broker/redis.ts', ['core/observers.ts']]]))).toEqual([
      'broker/redis.ts (broker) imports core/observers.ts (core)',
    ]);
    expect(cycles(broken)).toEqual(['auth/policy.ts → auth/tokens.ts → auth/policy.ts']);
  });
});
