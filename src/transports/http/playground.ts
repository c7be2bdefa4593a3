/**
 * The offline playground: GraphiQL (Yoga's build of it, `@graphql-yoga/render-graphiql`)
 * served from the installed package — its script, stylesheet and the three Monaco
 * editor workers each from a path of this server, nothing from a CDN — so it works
 * without internet and under a Content-Security-Policy that allows this origin only.
 * Yoga's own renderer inlines them all (and makes the workers `blob:` URLs), which such
 * a policy forbids; this page only loads files, and its options travel as JSON data.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { StaticPages } from './pages.js';

/** Where the playground's files are served. */
const PLAYGROUND_ASSETS = '/graphiql';

/** What the page starts with (Yoga's GraphiQL options). */
export interface PlaygroundOptions {
  readonly title?: string | undefined;
  readonly endpoint?: string | undefined;
  readonly defaultQuery?: string | undefined;
  /** The headers tab's text, JSON. */
  readonly headers?: string | undefined;
}

/**
 * Every file, script, worker and socket from this origin only. GraphiQL's editor sets
 * inline styles and its stylesheet embeds its icon fonts as `data:` URLs: neither loads
 * anything from anywhere, so both are allowed; no inline script is.
 */
export const PLAYGROUND_CSP =
  "default-src 'self'; style-src 'self' 'unsafe-inline'; font-src 'self' data:; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** Monaco asks for a worker by label; each is one file here. */
const WORKER_FILES = { editorWorkerService: 'editor.worker.js', json: 'json.worker.js', graphql: 'graphql.worker.js' } as const;

/** Starts GraphiQL with the options in the page's JSON, and points Monaco at this server's workers. */
const BOOT_SCRIPT = `const options = JSON.parse(document.getElementById('graphiql-options').textContent);
const workers = ${JSON.stringify(Object.fromEntries(Object.entries(WORKER_FILES).map(([label, file]) => [label, `${PLAYGROUND_ASSETS}/${file}`])))};
self.MonacoEnvironment = { globalAPI: false, getWorkerUrl: (_moduleId, label) => workers[label] };
YogaGraphiQL.renderYogaGraphiQL(document.getElementById('root'), options);
`;

type Assets = typeof import('@graphql-yoga/render-graphiql/graphiql');

/** The page Yoga sends a browser at `/graphql` (its `renderGraphiQL`). */
export function renderPlayground(options: PlaygroundOptions): string {
  // `<` escaped, so no text in the options can close the JSON's script element.
  const json = JSON.stringify({ ...options, subscriptionsProtocol: 'SSE' }).replace(/</g, '\\u003c');
  const title = (options.title ?? 'GraphiQL').replace(/[<&"]/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>${title}</title>
    <link rel="icon" href="${PLAYGROUND_ASSETS}/favicon.ico" />
    <link rel="stylesheet" href="${PLAYGROUND_ASSETS}/graphiql.css" />
    <script type="application/json" id="graphiql-options">${json}</script>
    <script src="${PLAYGROUND_ASSETS}/graphiql.js" defer></script>
    <script src="${PLAYGROUND_ASSETS}/boot.js" defer></script>
  </head>
  <body id="body" class="no-focus-outline">
    <noscript>You need to enable JavaScript to run this app.</noscript>
    <div id="root"></div>
  </body>
</html>`;
}

/**
 * Serves the playground's files under {@link PLAYGROUND_ASSETS}. The 9 MB package is
 * loaded on the first request, so a server whose playground is never opened never holds it.
 */
export function createPlaygroundAssets(): StaticPages {
  let assets: Promise<Map<string, { type: string; body: Buffer }>> | undefined;
  const load = async () => {
    const files: Assets = await import('@graphql-yoga/render-graphiql/graphiql');
    const script = 'text/javascript; charset=utf-8';
    return new Map([
      ['graphiql.js', { type: script, body: Buffer.from(files.js) }],
      ['graphiql.css', { type: 'text/css; charset=utf-8', body: Buffer.from(files.css) }],
      ['boot.js', { type: script, body: Buffer.from(BOOT_SCRIPT) }],
      [WORKER_FILES.editorWorkerService, { type: script, body: Buffer.from(files.editorWorkerService) }],
      [WORKER_FILES.json, { type: script, body: Buffer.from(files.jsonWorker) }],
      [WORKER_FILES.graphql, { type: script, body: Buffer.from(files.graphqlWorker) }],
      ['favicon.ico', { type: 'image/x-icon', body: Buffer.from(files.favicon.replace(/^data:[^,]*,/, ''), 'base64') }],
    ]);
  };
  return {
    serve(request: IncomingMessage, response: ServerResponse, path: string): boolean {
      if (!path.startsWith(`${PLAYGROUND_ASSETS}/`)) return false;
      const name = path.slice(PLAYGROUND_ASSETS.length + 1);
      assets ??= load();
      assets.then(
        (files) => {
          const file = files.get(name);
          if (!file) {
            response.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end(`no playground file ${name}`);
            return;
          }
          response.writeHead(200, { 'Content-Type': file.type, 'Cache-Control': 'public, max-age=3600', 'X-Content-Type-Options': 'nosniff' });
          response.end(request.method === 'HEAD' ? undefined : file.body);
        },
        (error: unknown) => {
          response.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end(`the playground's files could not be loaded: ${String(error)}`);
        },
      );
      return true;
    },
  };
}
