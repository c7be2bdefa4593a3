/**
 * A follower tab back from the back/forward cache, in headless Chromium against a real
 * subscribe server on real Redis. Two tabs of one origin and one user share one WebSocket
 * (`shared-tabs/app.ts`, `@herald/client` with its defaults); the follower navigates to
 * another page of the origin and the browser keeps it in the bfcache — REALLY: its
 * `pagehide` and `pageshow` come with `persisted: true` and its `window.heraldTab` record is
 * the same object afterwards (a page loaded afresh would start an empty one). The client
 * leaves on `pagehide` and, on a persisted `pageshow`, says `hello` with its position
 * (packages/client/src/shared.ts). Notifications sent while it was away reach it from the
 * leader's kept events exactly once, in order, with no gap, and it goes on with the live
 * ones; the leader is handed each once too and the origin still holds one socket. Twice:
 * with Web Locks electing the leader, and with the heartbeat fallback.
 */
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { Browser, Page, WebSocket } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeBrowsers, launchChromium, pageProblems } from '../../support/browser.js';
import { createTestBroker, startPublishServer, startSubscribeServer, stopAll } from '../../support/herald.js';
import { send } from '../../support/http.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';
import { serviceToken, userToken } from '../../support/tokens.js';
import type { TabRecord } from './shared-tabs/app.js';

const HERE = fileURLToPath(new URL('./shared-tabs/', import.meta.url));

let redis: RedisServer;
let pageDirectory: string;
let browser: Browser;
let publishUrl: string;
let appOrigin: string;

beforeAll(async () => {
  pageDirectory = await mkdtemp(join(tmpdir(), 'herald-bfcache-'));
  await build({
    entryPoints: [`${HERE}app.ts`],
    outfile: join(pageDirectory, 'app.js'),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    logLevel: 'warning',
  });
  await copyFile(`${HERE}index.html`, join(pageDirectory, 'index.html'));
  // Another page of the origin to go to and come back from: no script, nothing that keeps the app's page out of the cache.
  await writeFile(join(pageDirectory, 'away.html'), '<!doctype html><html lang="en"><head><meta charset="utf-8" /><title>away</title><link rel="icon" href="data:," /></head><body>away</body></html>\n');

  redis = await startRedisServer();
  const subscribe = await startSubscribeServer((await createTestBroker(redis.url)).broker, { pages: [{ path: '/tabs', directory: pageDirectory }] });
  publishUrl = (await startPublishServer((await createTestBroker(redis.url)).broker)).url;
  appOrigin = `http://127.0.0.1:${subscribe.port}`;
  browser = await launchChromium({ backForwardCache: true });
});
afterAll(async () => {
  await closeBrowsers();
  await stopAll();
  await redis?.stop();
  if (pageDirectory) await rm(pageDirectory, { recursive: true, force: true });
});

const record = (page: Page): Promise<TabRecord> => page.evaluate(() => (globalThis as unknown as { heraldTab: TabRecord }).heraldTab);
const delivered = async (page: Page): Promise<string[]> => (await record(page)).delivered;
const numbered = (prefix: string, count: number): string[] => Array.from({ length: count }, (_, at) => `${prefix} ${at + 1}`);

describe.each([
  { election: 'Web Locks', webLocks: true, user: 'bfcache-locks' },
  { election: 'the heartbeat fallback (no Web Locks)', webLocks: false, user: 'bfcache-beats' },
])('leader elected by $election', ({ webLocks, user }) => {
  it('a follower tab back from the bfcache rejoins and gets what was sent while it was away exactly once, in order', async () => {
    const publish = async (texts: readonly string[]): Promise<void> => {
      for (const text of texts) await send(publishUrl, serviceToken(), user, text);
    };
    const context = await browser.newContext();
    // A browser without the Web Locks API: the tabs elect their leader by heartbeats.
    if (!webLocks) await context.addInitScript(() => Object.defineProperty(Navigator.prototype, 'locks', { get: () => undefined }));
    const sockets: Array<{ page: Page; socket: WebSocket }> = [];
    const problems: string[] = [];
    const url = `${appOrigin}/tabs/#token=${userToken(user)}`;
    const openTab = async (): Promise<Page> => {
      const page = await context.newPage();
      page.on('websocket', (socket) => sockets.push({ page, socket }));
      const seen = pageProblems(page);
      page.on('close', () => problems.push(...seen));
      await page.goto(url);
      await expect.poll(async () => (await record(page)).statuses.at(-1), { timeout: 15_000 }).toBe('live');
      return page;
    };
    const first = await openTab();
    const second = await openTab();
    await expect.poll(() => sockets.length).toBe(1);
    const leader = sockets[0]?.page;
    const follower = leader === first ? second : first;
    if (!leader) throw new Error('no tab opened a socket');

    const before = numbered('before', 3);
    await publish(before);
    for (const tab of [leader, follower]) await expect.poll(() => delivered(tab)).toEqual(before);

    // Away to another page of the origin: the follower's page goes into the bfcache.
    // Why Chrome did not keep or restore the page, if it did not (e.g. `BroadcastChannelOnMessage`).
    const notRestored: string[] = [];
    const cdp = await context.newCDPSession(follower);
    await cdp.send('Page.enable');
    cdp.on('Page.backForwardCacheNotUsed', (event) => notRestored.push(...event.notRestoredExplanations.map((explanation) => explanation.reason)));
    await follower.goto(`${appOrigin}/tabs/away.html`);
    const away = numbered('while away', 5);
    await publish(away);
    await expect.poll(() => delivered(leader)).toEqual([...before, ...away]);

    // And back: restored from the cache, not loaded again — the record of its first load
    // goes on (a page loaded again would have a new one, with one `pageshow persisted=false`).
    await follower.goBack({ waitUntil: 'commit' });
    const pageEvents = (): Promise<string[]> => follower.evaluate(() => (globalThis as unknown as { heraldTab?: TabRecord }).heraldTab?.pageEvents ?? []);
    await expect.poll(async () => (await pageEvents()).at(-1)?.startsWith('pageshow')).toBe(true);
    expect(notRestored).toEqual([]);
    expect(await pageEvents()).toEqual(['pageshow persisted=false', 'pagehide persisted=true', 'pageshow persisted=true']);
    await expect.poll(() => delivered(follower)).toEqual([...before, ...away]);
    await expect.poll(async () => (await record(follower)).statuses.at(-1)).toBe('live');

    const after = numbered('after', 3);
    await publish(after);
    for (const tab of [leader, follower]) await expect.poll(() => delivered(tab)).toEqual([...before, ...away, ...after]);
    // Nothing more arrives late: a marker sent last is the only thing after `after`.
    await publish(['marker']);
    for (const tab of [leader, follower]) await expect.poll(() => delivered(tab)).toEqual([...before, ...away, ...after, 'marker']);
    for (const tab of [leader, follower]) {
      const { gaps, errors } = await record(tab);
      expect(gaps).toEqual([]);
      expect(errors).toEqual([]);
    }
    // Still one socket for the origin: the returning tab followed, it did not lead.
    expect(sockets).toHaveLength(1);
    expect(sockets[0]?.socket.isClosed()).toBe(false);
    await context.close();
    expect(problems).toEqual([]);
  });
});
