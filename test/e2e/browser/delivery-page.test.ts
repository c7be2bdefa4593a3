/**
 * The ledger page (`/delivery/` on the publish server): served in development only,
 * self-contained, pre-filled with the dev service token, and in a real browser it
 * shows one notification's summary and timeline. Herald runs as `npm start` runs it
 * without Redis: the in-process broker and its in-memory ledger.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { readConfig } from '../../../src/config/index.js';
import { startHerald, type RunningHerald } from '../../../src/servers/herald.js';
import { closeBrowsers, launchChromium, pageProblems, screenshot } from '../../support/browser.js';
import { quietLogger } from '../../support/herald.js';
import { postGraphQL, readEvents, sendFull } from '../../support/http.js';
import { eventually } from '../../support/push-worker.js';
import { TEST_SECRET } from '../../support/tokens.js';

const PORTS = { HOST: '127.0.0.1', SUBSCRIBE_PORT: '0', PUBLISH_PORT: '0', GRPC_PORT: '0', PUBLISH_GRPC_PORT: '0' };

let dev: RunningHerald;
let browser: Browser;
const started: RunningHerald[] = [];

beforeAll(async () => {
  // No JWT_SECRET: development, with dev tokens, as `npm start` runs.
  dev = await startHerald(readConfig(PORTS), 'all', quietLogger);
  started.push(dev);
  browser = await launchChromium();
});
afterAll(async () => {
  await closeBrowsers();
  await Promise.all(started.map((herald) => herald.stop()));
});

const pageUrl = (herald: RunningHerald): string => `http://127.0.0.1:${herald.publishPort}/delivery/`;

describe('the ledger page', () => {
  it('is served in development, with the dev service token, its own script and style, under a same-origin CSP', async () => {
    expect(dev.deliveryPath).toBe('/delivery/');
    const response = await fetch(pageUrl(dev));
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/html/);
    expect(response.headers.get('content-security-policy')).toMatch(/default-src 'self'/);
    const html = await response.text();
    expect(html).toContain(`<meta name="herald-service-token" content="${dev.devTokens?.service.token}">`);
    expect(html).not.toMatch(/https?:\/\//); // nothing from elsewhere
    for (const [file, type] of [['delivery.js', /^text\/javascript/], ['delivery.css', /^text\/css/]] as const) {
      const asset = await fetch(`${pageUrl(dev)}${file}`);
      expect(asset.status).toBe(200);
      expect(asset.headers.get('content-type')).toMatch(type);
    }
    expect((await fetch(`${pageUrl(dev)}nothing-here.js`)).status).toBe(404);
  });

  it('is not served in production (404), nor named in what the server runs', async () => {
    const config = readConfig({ ...PORTS, JWT_SECRET: TEST_SECRET });
    const production = await startHerald({ ...config, production: true }, 'all', quietLogger);
    started.push(production);
    expect(production.deliveryPath).toBeUndefined();
    expect((await fetch(pageUrl(production))).status).toBe(404);
  });

  it("shows one notification's summary and timeline in a browser (the in-process ledger: accepted, live on SSE)", async () => {
    const tokens = dev.devTokens;
    if (tokens === undefined) throw new Error('no dev tokens');
    const publishUrl = `http://127.0.0.1:${dev.publishPort}/graphql`;
    const subscribeUrl = `http://127.0.0.1:${dev.subscribePort}/graphql`;
    const query = encodeURIComponent(`subscription { onNotificationReceived(userName: "${tokens.user.name}") { id } }`);
    const abort = new AbortController();
    readEvents(await fetch(`${subscribeUrl}?query=${query}`, { headers: { Accept: 'text/event-stream', Authorization: `Bearer ${tokens.user.token}` }, signal: abort.signal }));
    await eventually(async () => (await sendFull(publishUrl, tokens.service.token, { to: tokens.user.name, text: 'probe' })).receivedUsers === 1, 'the SSE subscription');
    const sent = await sendFull(publishUrl, tokens.service.token, { to: tokens.user.name, text: 'Your invoice #1042 is ready' });
    abort.abort();
    // The same answer the page will show, asked directly.
    const asked = await postGraphQL(publishUrl, '{ delivery(id: "' + sent.id + '") { live { byTransport { sse } } } }', { token: tokens.service.token });
    expect(asked.body.data).toEqual({ delivery: { live: { byTransport: { sse: 1 } } } });

    const page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
    const problems = pageProblems(page);
    await page.goto(`${pageUrl(dev)}?id=${encodeURIComponent(sent.id)}`);
    await expect.poll(() => page.locator('#status').textContent()).toBe(`Ledger of ${sent.id} (2 events)`);
    expect(await page.locator('#timeline tbody tr td:nth-child(2)').allTextContents()).toEqual(['ACCEPTED', 'DELIVERED_LIVE']);
    expect(await page.locator('#live').textContent()).toBe('1 subscription(s) on 1 server(s): websocket 0, sse 1, grpc 0');
    expect(await page.locator('#accepted').textContent()).toContain(tokens.service.name);
    await screenshot(page, 'delivery-page');

    // An unknown id: said so, no summary.
    await page.fill('#notification-id', `${sent.id.split('_')[0]}_1-1`);
    await page.click('button[type="submit"]');
    await expect.poll(() => page.locator('#status').textContent()).toMatch(/^No ledger for /);
    expect(await page.locator('#summary').isHidden()).toBe(true);
    expect(problems).toEqual([]);
  });
});
