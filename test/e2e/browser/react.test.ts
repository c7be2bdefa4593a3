/**
 * `@herald/client/react` in Chromium, rendered by react-dom into a real DOM: the hooks
 * re-render the component when the inbox changes, and unmounting unsubscribes them.
 */
import { build } from 'esbuild';
import type { Page } from 'playwright-core';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeBrowsers, launchChromium, pageProblems } from '../../support/browser.js';
import type { DrivenInbox } from './react/app.js';

let page: Page;
let problems: string[];

beforeAll(async () => {
  const bundle = await build({
    entryPoints: [fileURLToPath(new URL('./react/app.ts', import.meta.url))],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    define: { 'process.env.NODE_ENV': '"development"' },
    logLevel: 'warning',
  });
  page = await (await launchChromium()).newPage();
  problems = pageProblems(page);
  await page.setContent('<!doctype html><div id="root"></div>');
  await page.addScriptTag({ type: 'module', content: bundle.outputFiles[0]?.text ?? '' });
  await page.waitForFunction(() => 'heraldInbox' in globalThis);
});
afterAll(closeBrowsers);

/** Calls one method of the page's {@link DrivenInbox}. */
const drive = <K extends keyof DrivenInbox>(method: K, ...args: Parameters<DrivenInbox[K]>): Promise<ReturnType<DrivenInbox[K]>> =>
  page.evaluate(
    ([name, values]) => {
      const inbox = (globalThis as unknown as { heraldInbox: Record<string, (...values: unknown[]) => unknown> }).heraldInbox;
      return inbox[name]?.(...values);
    },
    [method, args] as const,
  ) as Promise<ReturnType<DrivenInbox[K]>>;
const badge = (): Promise<string | null> => page.locator('#badge').textContent();
const items = (): Promise<string[]> => page.locator('#list li').allTextContents();

describe('@herald/client/react in a browser', () => {
  it('useUnreadCount and useNotifications re-render on each change of the inbox', async () => {
    expect(await badge()).toBe('0');
    expect(await items()).toEqual([]);
    expect(await drive('listeners')).toBe(2);

    await drive('add', 'first');
    await expect.poll(badge).toBe('1');
    await drive('add', 'second');
    await expect.poll(items).toEqual(['second', 'first']);
    expect(await badge()).toBe('2');
    await drive('markAllRead');
    await expect.poll(badge).toBe('0');
    expect(await items()).toEqual(['second', 'first']);
  });

  it('renders no more than the changes ask for, and unmounting unsubscribes both hooks', async () => {
    const before = await drive('renders');
    await new Promise((resolve) => setTimeout(resolve, 200));
    // A stable snapshot: nothing changed, nothing re-rendered (an unstable one would loop).
    expect(await drive('renders')).toBe(before);
    await drive('unmount');
    expect(await drive('listeners')).toBe(0);
    expect(problems).toEqual([]);
  });
});
