/**
 * `@herald/client` in headless Chromium with `shared` at its default: five tabs of one
 * origin and one user hold ONE WebSocket to a real subscribe server on real Redis,
 * counted by the server (`herald_connections{transport="websocket"}`) and by the browser
 * (every socket any tab opened). The leader's tab is closed while notifications are being
 * published: each remaining tab's app is handed every notification exactly once, in
 * order. A reloaded tab, and a tab opened after every tab was closed, resume from the
 * position in localStorage: nothing repeated, nothing lost. All of it twice: with the
 * Web Locks API electing the leader, and with it taken away (the heartbeat fallback).
 *
 * The app (`shared-tabs/app.ts`) is bundled with the package's source by esbuild and
 * served by the subscribe server beside `/graphql`, so the tabs share its origin.
 */
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { Browser, Page, WebSocket } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMetrics, type HeraldMetrics } from '../../../src/common/metrics.js';
import { closeBrowsers, launchChromium, pageProblems } from '../../support/browser.js';
import { createTestBroker, startPublishServer, startSubscribeServer, stopAll } from '../../support/herald.js';
import { send } from '../../support/http.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';
import { serviceToken, userToken } from '../../support/tokens.js';
import type { TabRecord } from './shared-tabs/app.js';

const HERE = fileURLToPath(new URL('./shared-tabs/', import.meta.url));
const TABS = 5;

let redis: RedisServer;
let pageDirectory: string;
let browser: Browser;
let metrics: HeraldMetrics;
let publishUrl: string;
let appOrigin: string;

beforeAll(async () => {
  pageDirectory = await mkdtemp(join(tmpdir(), 'herald-shared-tabs-'));
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

  redis = await startRedisServer();
  metrics = createMetrics({ role: 'test', processMetrics: false });
  const subscribe = await startSubscribeServer((await createTestBroker(redis.url)).broker, { pages: [{ path: '/tabs', directory: pageDirectory }], metrics });
  publishUrl = (await startPublishServer((await createTestBroker(redis.url)).broker)).url;
  appOrigin = `http://127.0.0.1:${subscribe.port}`;
  browser = await launchChromium();
});
afterAll(async () => {
  await closeBrowsers();
  await stopAll();
  await redis?.stop();
  if (pageDirectory) await rm(pageDirectory, { recursive: true, force: true });
});

/** Open WebSockets on the subscribe server, from its own gauge. */
async function serverSockets(): Promise<number> {
  const gauge = await metrics.registry.getSingleMetric('herald_connections')?.get();
  return gauge?.values.find((value) => value.labels['transport'] === 'websocket')?.value ?? 0;
}

const record = (page: Page): Promise<TabRecord> => page.evaluate(() => (globalThis as unknown as { heraldTab: TabRecord }).heraldTab);
const delivered = async (page: Page): Promise<string[]> => (await record(page)).delivered;
const waitLive = (page: Page): Promise<void> => expect.poll(async () => (await record(page)).statuses.at(-1), { timeout: 15_000 }).toBe('live');
const numbered = (prefix: string, count: number): string[] => Array.from({ length: count }, (_, at) => `${prefix} ${at + 1}`);

/**
 * One browser profile (a context: one origin's storage, locks and channels) whose tabs
 * run the app as `user`, with every WebSocket any of its tabs opened.
 */
async function openProfile(user: string, options: { webLocks: boolean }) {
  const context = await browser.newContext();
  // A browser without the Web Locks API: the tabs elect their leader by heartbeats.
  if (!options.webLocks) await context.addInitScript(() => Object.defineProperty(Navigator.prototype, 'locks', { get: () => undefined }));
  const sockets: Array<{ page: Page; socket: WebSocket }> = [];
  const problems: string[] = [];
  const url = `${appOrigin}/tabs/#token=${userToken(user)}`;
  return {
    sockets,
    problems,
    openSockets: () => sockets.filter(({ page, socket }) => !page.isClosed() && !socket.isClosed()),
    async openTab(): Promise<Page> {
      const page = await context.newPage();
      page.on('websocket', (socket) => sockets.push({ page, socket }));
      const seen = pageProblems(page);
      page.on('close', () => problems.push(...seen));
      await page.goto(url);
      await waitLive(page);
      return page;
    },
    /** Publishes `texts` to `user` one by one, `intervalMs` apart; `after(n)` runs once the n-th has been acknowledged. */
    async publish(texts: readonly string[], intervalMs: number, after: (sent: number) => Promise<void> = async () => undefined): Promise<void> {
      for (const [at, text] of texts.entries()) {
        await send(publishUrl, serviceToken(), user, text);
        await after(at + 1);
        await new Promise((resolve) => setTimeout(resolve, intervalMs));
      }
    },
    close: () => context.close(),
  };
}

describe.each([
  { election: 'Web Locks', webLocks: true },
  { election: 'the heartbeat fallback (no Web Locks)', webLocks: false },
])('@herald/client shared among the tabs of one origin, leader elected by $election', ({ webLocks }) => {
  it('five tabs hold one WebSocket; closing the leader mid-stream loses and repeats nothing; a reload and a reopened tab resume from storage', async () => {
    const profile = await openProfile(webLocks ? 'tabby' : 'tabitha', { webLocks });
    const tabs: Page[] = [];
    for (let tab = 0; tab < TABS; tab += 1) tabs.push(await profile.openTab());
    expect(await tabs[0]?.evaluate(() => (globalThis as { navigator: { locks?: unknown } }).navigator.locks !== undefined)).toBe(webLocks);

    // One socket, by the server's count and the browser's: four tabs listen through the leader.
    await expect.poll(serverSockets).toBe(1);
    expect(profile.sockets).toHaveLength(1);
    // And it stays one (a second leader would have opened its socket by now).
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(await serverSockets()).toBe(1);
    expect(profile.sockets).toHaveLength(1);

    const leader = profile.sockets[0]?.page;
    if (!leader) throw new Error('no tab opened a socket');
    const stream = numbered('stream', 30);
    await profile.publish(stream, 50, async (sent) => {
      if (sent === 10) await leader.close();
    });
    const survivors = tabs.filter((tab) => tab !== leader);
    for (const tab of survivors) await expect.poll(() => delivered(tab), { timeout: 15_000 }).toEqual(stream);
    // Another tab took over: again exactly one socket open.
    await expect.poll(serverSockets).toBe(1);
    expect(profile.openSockets()).toHaveLength(1);
    expect(profile.sockets).toHaveLength(2);

    // A reloaded tab starts from the position its earlier self stored: the next ones only.
    const reloaded = survivors.find((tab) => profile.openSockets()[0]?.page !== tab);
    if (!reloaded) throw new Error('no follower to reload');
    await reloaded.reload();
    await waitLive(reloaded);
    const afterReload = numbered('after reload', 5);
    await profile.publish(afterReload, 20);
    for (const tab of survivors.filter((tab) => tab !== reloaded)) await expect.poll(() => delivered(tab)).toEqual([...stream, ...afterReload]);
    await expect.poll(() => delivered(reloaded)).toEqual(afterReload);

    // Every tab closed: nothing is listening. What is sent meanwhile reaches the next tab from history, after the stored position.
    await Promise.all(survivors.map((tab) => tab.close()));
    await expect.poll(serverSockets).toBe(0);
    const whileClosed = numbered('while closed', 5);
    await profile.publish(whileClosed, 0);
    const reopened = await profile.openTab();
    await expect.poll(() => delivered(reopened)).toEqual(whileClosed);
    const { gaps, errors } = await record(reopened);
    expect(gaps).toEqual([]);
    expect(errors).toEqual([]);
    await reopened.close();
    await expect.poll(serverSockets).toBe(0);
    expect(profile.problems).toEqual([]);
    await profile.close();
  });
});
