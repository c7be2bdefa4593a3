/**
 * Headless Chromium for the browser tests: Debian's `chromium` (`apt-get install
 * chromium`; `.ci/run` installs it when missing) driven by playwright-core, which never
 * downloads a browser. Offline, as the machine is: every page loads from the servers the
 * test started.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';

/** The browser binary: Debian installs the real one under /usr/lib and a wrapper script in /usr/bin. */
const CHROMIUM = ['/usr/lib/chromium/chromium', '/usr/bin/chromium'].find((path) => existsSync(path));

/** Where each test's screenshot goes (not committed; the README's copies live in docs/). */
export const SCREENSHOTS = fileURLToPath(new URL('../../test-results/screenshots/', import.meta.url));

const browsers: Browser[] = [];

export interface ChromiumOptions {
  /**
   * Keeps the back/forward cache on: playwright-core turns it off by default
   * (`--disable-back-forward-cache`), so that `goBack()` always loads the page again.
   * @default false
   */
  backForwardCache?: boolean;
}

/**
 * Launches Chromium headless, sandbox-free (containers have no user namespaces), with
 * nothing that reaches the network on its own. playwright-core gives each launch a fresh
 * temporary `--user-data-dir` of its own.
 */
export async function launchChromium(options: ChromiumOptions = {}): Promise<Browser> {
  if (!CHROMIUM) throw new Error('chromium is not installed: apt-get install -y chromium (the browser tests drive it headless)');
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    ...(options.backForwardCache ? { ignoreDefaultArgs: ['--disable-back-forward-cache'] } : {}),
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  browsers.push(browser);
  return browser;
}

export async function closeBrowsers(): Promise<void> {
  await Promise.all(browsers.splice(0).map((browser) => browser.close()));
}

/** Saves the page as `<name>.png` under {@link SCREENSHOTS}. */
export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(SCREENSHOTS, { recursive: true });
  const path = `${SCREENSHOTS}${name}.png`;
  await page.screenshot({ path });
  return path;
}

/** Console errors and failed requests of `page`, so a test can show why a page broke. */
export function pageProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('requestfailed', (request) => problems.push(`request failed: ${request.url()} ${request.failure()?.errorText ?? ''}`));
  return problems;
}
