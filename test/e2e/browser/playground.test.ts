/**
 * The offline playground in headless Chromium: GraphiQL's files all come from the
 * subscribe server (the machine has no internet, and the page's Content-Security-Policy
 * allows its own origin only), it opens on Herald's sample subscription with the token
 * in its headers, and running it shows a notification sent over HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { channels, createTestBroker, startPublishServer, startSubscribeServer, stopAll, waitFor } from '../../support/herald.js';
import { send } from '../../support/http.js';
import { closeBrowsers, launchChromium, pageProblems, screenshot } from '../../support/browser.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';
import { serviceToken, userToken } from '../../support/tokens.js';

let redis: RedisServer;
let browser: Browser;
let playgroundUrl: string;
let publishUrl: string;

beforeAll(async () => {
  redis = await startRedisServer();
  const subscribe = await startSubscribeServer((await createTestBroker(redis.url)).broker, {
    graphiqlHeaders: { Authorization: `Bearer ${userToken('alice')}` },
  });
  playgroundUrl = subscribe.httpUrl;
  publishUrl = (await startPublishServer((await createTestBroker(redis.url)).broker)).url;
  browser = await launchChromium();
});
afterAll(async () => {
  await closeBrowsers();
  await stopAll();
  await redis?.stop();
});

describe('the playground', () => {
  it('renders offline from its own origin, runs the sample subscription and shows a notification sent over HTTP', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
    const problems = pageProblems(page);
    const requested: string[] = [];
    page.on('request', (request) => requested.push(request.url()));
    await page.goto(playgroundUrl);

    // Monaco draws spaces as no-break spaces.
    const textOf = async (selector: string): Promise<string> => (await page.locator(selector).innerText()).replace(/\u00a0/g, ' ');
    await expect.poll(() => textOf('.graphiql-query-editor'), { timeout: 15_000 }).toContain('onNotificationReceived(userName: "alice")');
    await page.locator('.graphiql-execute-button').click();
    await waitFor(async () => (await redis.numsub(channels.audienceChannel('acme', 'USER', 'alice'))) >= 1, 'the playground to subscribe', 10_000);

    await send(publishUrl, serviceToken(), 'alice', 'Hello from the playground test');
    await expect.poll(() => textOf('.graphiql-response'), { timeout: 10_000 }).toContain('Hello from the playground test');
    await screenshot(page, 'playground');

    // Everything came from the subscribe server: its page, GraphiQL's files and workers, the stream.
    const origin = new URL(playgroundUrl).origin;
    expect(requested.filter((url) => !url.startsWith(`${origin}/`))).toEqual([]);
    expect(requested).toContain(`${origin}/graphiql/graphiql.js`);
    expect(problems).toEqual([]);
  });
});
