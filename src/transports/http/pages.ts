/**
 * Static pages served beside GraphQL: the development inbox page (`examples/inbox/`).
 * Files are read from their directory on each request — it is a development aid, and a
 * rebuilt bundle shows on reload — and every page is sent under a Content-Security-Policy
 * that allows its own origin only: no CDN, no inline script.
 */
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, normalize, sep } from 'node:path';

/** One directory served under one path. */
export interface PageMount {
  /** The URL path it is served under, with a leading and no trailing slash, e.g. `/inbox`. */
  readonly path: string;
  /** The directory holding its files (`index.html` answers the path itself). */
  readonly directory: string;
}

/** Everything a page may load comes from the server's own origin (its socket included). */
const PAGE_CSP = "default-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json; charset=utf-8',
};

export interface StaticPages {
  /** Answers `path` and returns true if a mount holds it; false leaves the response untouched. */
  serve(request: IncomingMessage, response: ServerResponse, path: string): boolean;
}

export function createStaticPages(mounts: readonly PageMount[]): StaticPages {
  return {
    serve(request, response, path) {
      const mount = mounts.find((candidate) => path === candidate.path || path.startsWith(`${candidate.path}/`));
      if (!mount) return false;
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        response.writeHead(405, { Allow: 'GET, HEAD' }).end();
        return true;
      }
      if (path === mount.path) {
        // Relative URLs in the page resolve against the directory, so it needs its slash.
        response.writeHead(308, { Location: `${mount.path}/` }).end();
        return true;
      }
      const relative = decodeURIComponentSafe(path.slice(mount.path.length + 1)) || 'index.html';
      const file = normalize(join(mount.directory, relative));
      // `..` and absolute paths never leave the mount's directory.
      if (!file.startsWith(normalize(mount.directory) + sep)) {
        response.writeHead(404).end();
        return true;
      }
      readFile(file).then(
        (body) => {
          response.writeHead(200, {
            'Content-Type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream',
            'Content-Security-Policy': PAGE_CSP,
            'X-Content-Type-Options': 'nosniff',
            'Cache-Control': 'no-cache',
          });
          response.end(request.method === 'HEAD' ? undefined : body);
        },
        () => {
          response.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end(`no such file: ${relative}`);
        },
      );
      return true;
    },
  };
}

function decodeURIComponentSafe(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return '\0';
  }
}
