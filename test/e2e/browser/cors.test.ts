/**
 * A page on another origin, in headless Chromium: refused by a production server (only
 * `CORS_ORIGINS` counts) — the refusal names no origin in a CORS header, so the page's
 * script cannot read it, and a line in the server's log names `CORS_ORIGINS`; served by
 * a development server, which allows any localhost origin.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import type { Logger } from '../../../src/common/logger.js';
import { createTestBroker, startSubscribeServer, stopAll } from '../../support/herald.js';
import { closeBrowsers, launchChromium, screenshot } from '../../support/browser.js';

let browser: Browser;
let appServer: Server;
let appOrigin: string;

/** The foreign app: one page that calls the Herald at `?herald=<port>` over HTTP and WebSocket and shows what happened. */
const APP_PAGE = `<!doctype html><meta charset="utf-8"><title>Another app</title>
<body style="font: 15px system-ui; padding: 24px"><h1>An app on another origin</h1><pre id="out">…</pre>
<script>
  const port = new URLSearchParams(location.search).get('herald');
  const results = (window.results = {});
  const show = () => (document.getElementById('out').textContent = JSON.stringify(results, null, 2));
  fetch('http://127.0.0.1:' + port + '/graphql?query=%7B__typename%7D').then(
    (response) => response.text().then((text) => { results.http = 'read ' + response.status + ' ' + text; show(); }),
    (error) => { results.http = 'blocked: ' + error.message; show(); },
  );
  const socket = new WebSocket('ws://127.0.0.1:' + port + '/graphql', 'graphql-transport-ws');
  socket.onopen = () => { results.websocket = 'open'; show(); socket.close(); };
  socket.onclose = (event) => { results.websocket ??= 'closed ' + event.code; show(); };
</script>`;

beforeAll(async () => {
  appServer = createServer((_request, response) => response.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end(APP_PAGE));
  await new Promise<void>((resolve) => appServer.listen(0, '127.0.0.1', resolve));
  appOrigin = `http://127.0.0.1:${(appServer.address() as AddressInfo).port}`;
  browser = await launchChromium();
});
afterAll(async () => {
  await closeBrowsers();
  await stopAll();
  await new Promise((resolve) => appServer.close(resolve));
});

/** Opens the app against the Herald on `port`; resolves with what the page saw. */
async function openApp(port: number, name: string): Promise<Record<string, string>> {
  const page = await browser.newPage({ viewport: { width: 900, height: 420 } });
  await page.goto(`${appOrigin}/?herald=${port}`);
  await expect.poll(() => page.evaluate('Object.keys(window.results).length'), { timeout: 10_000 }).toBe(2);
  await screenshot(page, name);
  return (await page.evaluate('window.results')) as Record<string, string>;
}

describe('a page on another origin', () => {
  it('is refused by a production server: the page reads nothing, the socket is refused, the server logs it naming CORS_ORIGINS', async () => {
    const warnings: string[] = [];
    const logger: Logger = { info: () => undefined, warn: (message: unknown) => void warnings.push(String(message)), error: () => undefined };
    const server = await startSubscribeServer((await createTestBroker()).broker, { production: true, corsOrigins: ['https://app.example.com'], logger });
    const results = await openApp(server.port, 'cors-refused');

    // The 403 names the page's origin in no CORS header, so the browser shares nothing of it with the page.
    expect(results['http']).toMatch(/^blocked: /);
    // A browser shows nothing of a refused upgrade but the close: the server's log is where it is said.
    expect(results['websocket']).toBe('closed 1006');
    // One line per origin, though it was refused twice (HTTP and the upgrade).
    expect(warnings).toEqual([expect.stringMatching(new RegExp(`${appOrigin.replace(/[.:/]/g, '\\$&')}.*CORS_ORIGINS`))]);
  });

  it('is served by a development server, which allows any localhost origin', async () => {
    const server = await startSubscribeServer((await createTestBroker()).broker);
    const results = await openApp(server.port, 'cors-development');
    expect(results).toEqual({ http: 'read 200 {"data":{"__typename":"Query"}}', websocket: 'open' });
  });
});
