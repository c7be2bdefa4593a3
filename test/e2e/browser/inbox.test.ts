/**
 * The inbox page (`examples/inbox`) in headless Chromium, against real servers on one
 * Redis: two devices of one user follow each other's read state, and a page outlives a
 * restart of its subscribe server without losing or repeating a notification; its
 * preferences panel turns a category off in app for both devices.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { INBOX_DIST } from '../../../examples/inbox/build.js';
import { createTestBroker, startPublishServer, startSubscribeServer, stopAll, type RunningSubscribeServer } from '../../support/herald.js';
import { postGraphQL, send } from '../../support/http.js';
import { closeBrowsers, launchChromium, pageProblems, screenshot } from '../../support/browser.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';
import { serviceToken, userToken } from '../../support/tokens.js';

const PAGES = [{ path: '/inbox', directory: INBOX_DIST }];
/**
 * How long a page may take to show what the servers sent: a bound that a notification
 * that never arrives fails, set for a browser on a shared CI machine (vitest's 1 s default
 * failed there under load while every notification arrived).
 */
const EVENTUALLY = { timeout: 10_000 };

let redis: RedisServer;
let browser: Browser;
let subscribe: RunningSubscribeServer;
let publishUrl: string;

beforeAll(async () => {
  redis = await startRedisServer();
  subscribe = await startSubscribeServer((await createTestBroker(redis.url)).broker, { pages: PAGES });
  publishUrl = (await startPublishServer((await createTestBroker(redis.url)).broker)).url;
  browser = await launchChromium();
});
afterAll(async () => {
  await closeBrowsers();
  await stopAll();
  await redis?.stop();
});

const inboxUrl = (port: number, user: string): string => `http://127.0.0.1:${port}/inbox/#token=${userToken(user, { stores: ['store-1'] })}`;

/** Opens the inbox of `user` in a context of its own (a device) and waits until it is live. */
async function openDevice(user: string): Promise<{ page: Page; problems: string[] }> {
  const context = await browser.newContext({ viewport: { width: 720, height: 560 } });
  const page = await context.newPage();
  const problems = pageProblems(page);
  await page.goto(inboxUrl(subscribe.port, user));
  await expect.poll(() => page.getByTestId('status').getAttribute('data-state'), { timeout: 10_000 }).toBe('live');
  return { page, problems };
}

const shownTexts = (page: Page): Promise<string[]> => page.locator('[data-testid="notification"] .item__text').allTextContents();
const badge = async (page: Page): Promise<string | undefined> => {
  const element = page.getByTestId('badge');
  return (await element.isHidden()) ? undefined : ((await element.textContent()) ?? '');
};

describe('the inbox page', () => {
  it('two devices of one user both show a new notification; marking it read on one drops the badge on the other', async () => {
    await send(publishUrl, serviceToken(), 'dana', 'Your invoice #1042 is ready');
    const phone = await openDevice('dana');
    const laptop = await openDevice('dana');
    // Loaded with `notifications` by the client once its connection is up.
    await expect.poll(() => shownTexts(phone.page), EVENTUALLY).toEqual(['Your invoice #1042 is ready']);
    await expect.poll(() => badge(laptop.page), EVENTUALLY).toBe('1');

    await send(publishUrl, serviceToken(), 'dana', 'Build #311 passed on main');
    for (const { page } of [phone, laptop]) {
      await expect.poll(() => shownTexts(page), EVENTUALLY).toEqual(['Build #311 passed on main', 'Your invoice #1042 is ready']);
      await expect.poll(() => badge(page), EVENTUALLY).toBe('2');
    }
    await screenshot(laptop.page, 'inbox-unread');

    await phone.page.getByTestId('mark-all').click();
    await expect.poll(() => badge(laptop.page), EVENTUALLY).toBeUndefined();
    await expect.poll(() => laptop.page.locator('[data-testid="notification"][data-read="false"]').count(), EVENTUALLY).toBe(0);
    expect(await badge(phone.page)).toBeUndefined();
    await screenshot(laptop.page, 'inbox-read-on-other-device');
    expect([...phone.problems, ...laptop.problems]).toEqual([]);
  });

  it('shows bidirectional controls in a notification as escapes, isolated: "\\u202Egnp.exe" does not read "exe.png"', async () => {
    await send(publishUrl, serviceToken(), 'farid', 'invoice \u202Egnp.exe');
    await send(publishUrl, serviceToken(), 'farid', '\u05d7\u05e9\u05d1\u05d5\u05e0\u05d9\u05ea 1042 \u2067ready\u2069\u200f');
    const { page, problems } = await openDevice('farid');
    await expect.poll(() => shownTexts(page), EVENTUALLY).toEqual(['\u05d7\u05e9\u05d1\u05d5\u05e0\u05d9\u05ea 1042 \\u2067ready\\u2069\\u200f', 'invoice \\u202egnp.exe']);
    // No control is left in what the page shows, and each text sets its own direction.
    const listed = await page.getByTestId('list').textContent();
    expect(listed).not.toMatch(/[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/);
    expect(await page.locator('.item__text').evaluateAll((texts) => texts.map((text) => text.getAttribute('dir')))).toEqual(['auto', 'auto']);
    await screenshot(page, 'inbox-bidi-escaped');
    expect(problems).toEqual([]);
  });

  it("a browser's own EventSource (Accept: text/event-stream) gets an event stream, for a query and a subscription", async () => {
    const { page } = await openDevice('gail');
    const events = await page.evaluate(async () => {
      const firstEvent = (query: string) =>
        new Promise<string>((resolve, reject) => {
          const source = new EventSource(`/graphql?query=${encodeURIComponent(query)}`);
          source.addEventListener('next', (event) => {
            source.close();
            resolve((event as MessageEvent<string>).data);
          });
          source.onerror = () => {
            source.close();
            reject(new Error('the event stream failed'));
          };
        });
      // An EventSource sends no Authorization header: the subscription is refused, on the stream.
      return [await firstEvent('{ __typename }'), await firstEvent('subscription { onNotificationReceived(userName: "gail") { text } }')];
    });
    expect(JSON.parse(events[0] ?? '')).toEqual({ data: { __typename: 'Query' } });
    expect(JSON.parse(events[1] ?? '')).toMatchObject({ errors: [{ extensions: { code: 'UNAUTHENTICATED' } }] });
  });

  it('reconnects after its subscribe server restarts and shows each notification sent meanwhile once, in order', async () => {
    const { page, problems } = await openDevice('erin');
    await send(publishUrl, serviceToken(), 'erin', 'before the restart');
    await expect.poll(() => shownTexts(page), EVENTUALLY).toEqual(['before the restart']);

    const { port } = subscribe;
    await subscribe.stop();
    await expect.poll(() => page.getByTestId('status').getAttribute('data-state'), EVENTUALLY).toBe('reconnecting');
    const missed = ['missed 1', 'missed 2', 'missed 3'];
    for (const text of missed) await send(publishUrl, serviceToken(), 'erin', text);
    subscribe = await startSubscribeServer((await createTestBroker(redis.url)).broker, { pages: PAGES, port });

    await expect.poll(() => page.getByTestId('status').getAttribute('data-state'), { timeout: 15_000 }).toBe('live');
    // While the server was down, its refused reconnects were logged by the browser; from here on nothing may be.
    const problemsBefore = problems.length;
    await send(publishUrl, serviceToken(), 'erin', 'after the restart');
    const expected = ['after the restart', ...[...missed].reverse(), 'before the restart'];
    await expect.poll(() => shownTexts(page), { timeout: 10_000 }).toEqual(expected);
    expect(await badge(page)).toBe('5');
    await screenshot(page, 'inbox-after-restart');
    expect(problems.slice(problemsBefore)).toEqual([]);
  });

  it('the preferences panel lists a category seen; turning it off in app hides the next ones on both devices, others still arrive', async () => {
    const sendWithCategory = async (text: string, category?: string): Promise<void> => {
      const response = await postGraphQL(publishUrl, 'mutation Send($to: String!, $text: String!, $category: String) { sendNotification(to: $to, text: $text, category: $category) { id } }', {
        token: serviceToken(),
        variables: { to: 'pia', text, ...(category ? { category } : {}) },
      });
      expect(response.body.errors).toBeUndefined();
    };
    await sendWithCategory('Spring sale', 'promo');
    const phone = await openDevice('pia');
    const laptop = await openDevice('pia');
    const box = phone.page.getByTestId('pref-promo-IN_APP');
    await expect.poll(() => box.isChecked(), { timeout: 10_000 }).toBe(true);
    await box.uncheck();
    // The answer redraws it unchecked and enabled again: the change is saved.
    await expect.poll(async () => (await box.isEnabled()) && !(await box.isChecked()), EVENTUALLY).toBe(true);

    await sendWithCategory('Summer sale', 'promo');
    await sendWithCategory('Your order shipped');
    for (const device of [phone, laptop]) {
      await expect.poll(() => shownTexts(device.page), EVENTUALLY).toContain('Your order shipped');
      // Sent before it: had it been delivered, it would be shown by now.
      expect(await shownTexts(device.page)).not.toContain('Summer sale');
    }
    expect(phone.problems).toEqual([]);
    expect(laptop.problems).toEqual([]);
  });
});
