/**
 * The ledger page: one notification's `delivery(id)` — summary first, then the timeline —
 * for the question "why didn't X get Y". Served by the publish server in development
 * only (never with `NODE_ENV=production`), at {@link DELIVERY_PAGE_PATH}. Self-contained:
 * its own HTML, script and style from this module, no CDN, no framework, under a
 * Content-Security-Policy that allows its own origin only (no inline script or style).
 * In development the dev service token is put in the page, so it works at once.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { StaticPages } from './pages.js';
import { DELIVERY_PAGE_SCRIPT, DELIVERY_PAGE_STYLE } from './delivery-page-assets.js';

/** Where the publish server serves the page (with a trailing slash). */
export const DELIVERY_PAGE_PATH = '/delivery';

const PAGE_CSP = "default-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export interface DeliveryPageOptions {
  /** A service token to put in the token field (the dev token). @default none: the user pastes one */
  readonly serviceToken?: string | undefined;
}

/** `text` safe inside an HTML attribute value in double quotes. */
function attribute(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/'/g, '&#39;');
}

function html(serviceToken: string | undefined): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="herald-service-token" content="${attribute(serviceToken ?? '')}">
<title>Herald: a notification's ledger</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="delivery.css">
<script type="module" src="delivery.js"></script>
</head>
<body>
<h1>A notification's ledger</h1>
<p class="hint">Why didn't X get Y? Paste the notification's id (what <code>sendNotification</code> returned). Development only.</p>
<form id="ask">
  <label><span>Notification id</span> <input id="notification-id" name="id" autocomplete="off" required></label>
  <label><span>Service token (<code>notifications:publish</code>)</span> <input id="service-token" name="token" autocomplete="off"></label>
  <button type="submit">Show</button>
</form>
<p id="status" role="status"></p>
<section id="summary" hidden>
  <h2>Summary</h2>
  <dl id="accepted"></dl>
  <h3>Live</h3>
  <p id="live"></p>
  <h3>Devices</h3>
  <table id="devices"><thead><tr><th>User</th><th>Device</th><th>Kind</th><th>Status</th><th>Attempts</th><th>Last reason</th><th>Last detail</th><th>At</th></tr></thead><tbody></tbody></table>
  <h3>Read by</h3>
  <ul id="read-by"></ul>
  <p id="dropped"></p>
</section>
<section id="timeline-section" hidden>
  <h2>Timeline</h2>
  <table id="timeline"><thead><tr><th>At</th><th>Event</th><th>Details</th></tr></thead><tbody></tbody></table>
</section>
</body>
</html>
`;
}

const FILES: Readonly<Record<string, { type: string; body: () => string }>> = {
  'delivery.js': { type: 'text/javascript; charset=utf-8', body: () => DELIVERY_PAGE_SCRIPT },
  'delivery.css': { type: 'text/css; charset=utf-8', body: () => DELIVERY_PAGE_STYLE },
};

export function createDeliveryPage(options: DeliveryPageOptions = {}): StaticPages {
  const page = html(options.serviceToken);
  const send = (request: IncomingMessage, response: ServerResponse, type: string, body: string): void => {
    response.writeHead(200, {
      'Content-Type': type,
      'Content-Length': Buffer.byteLength(body),
      'Content-Security-Policy': PAGE_CSP,
      'X-Content-Type-Options': 'nosniff',
      'Cache-Control': 'no-store',
      'Referrer-Policy': 'no-referrer',
    });
    response.end(request.method === 'HEAD' ? undefined : body);
  };
  return {
    serve(request, response, path) {
      if (path !== DELIVERY_PAGE_PATH && !path.startsWith(`${DELIVERY_PAGE_PATH}/`)) return false;
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        response.writeHead(405, { Allow: 'GET, HEAD' }).end();
        return true;
      }
      if (path === DELIVERY_PAGE_PATH) {
        response.writeHead(308, { Location: `${DELIVERY_PAGE_PATH}/` }).end();
        return true;
      }
      const name = path.slice(DELIVERY_PAGE_PATH.length + 1);
      if (name === '' || name === 'index.html') {
        send(request, response, 'text/html; charset=utf-8', page);
        return true;
      }
      const file = FILES[name];
      if (file === undefined) return false;
      send(request, response, file.type, file.body());
      return true;
    },
  };
}
