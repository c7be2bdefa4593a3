/**
 * Static pages beside GraphQL (the development inbox page) and the playground's files:
 * served from their directory or package only, under a Content-Security-Policy.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestBroker, startSubscribeServer, stopAll } from '../support/herald.js';

let base: string;
let productionBase: string;
beforeAll(async () => {
  const directory = await mkdtemp(join(tmpdir(), 'herald-pages-'));
  await writeFile(join(directory, 'index.html'), '<!doctype html><title>page</title>');
  await writeFile(join(tmpdir(), 'herald-secret.txt'), 'outside the mount');
  base = `http://127.0.0.1:${(await startSubscribeServer((await createTestBroker()).broker, { pages: [{ path: '/inbox', directory }] })).port}`;
  productionBase = `http://127.0.0.1:${(await startSubscribeServer((await createTestBroker()).broker, { production: true })).port}`;
});
afterAll(stopAll);

describe('static pages', () => {
  it('serves the mount under its own-origin CSP, redirects its bare path, and never a file outside it', async () => {
    const page = await fetch(`${base}/inbox/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(await page.text()).toContain('<title>page</title>');
    expect((await fetch(`${base}/inbox`, { redirect: 'manual' })).headers.get('location')).toBe('/inbox/');
    for (const path of ['/inbox/..%2Fherald-secret.txt', '/inbox/%2e%2e/%2e%2e/herald-secret.txt', '/inbox/missing.js']) {
      const response = await fetch(`${base}${path}`);
      expect(response.status, path).toBe(404);
      expect(await response.text()).not.toContain('outside the mount');
    }
    expect((await fetch(`${base}/inbox/`, { method: 'POST', body: 'x' })).status).toBe(405);
  });

  it('serves the playground files when PLAYGROUND is on, and nothing of them when off (production)', async () => {
    const script = await fetch(`${base}/graphiql/graphiql.js`);
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect((await script.text()).length).toBeGreaterThan(1_000_000);
    const html = await fetch(`${base}/graphql`, { headers: { Accept: 'text/html' } });
    expect(html.headers.get('content-security-policy')).toMatch(/^default-src 'self';/);
    expect(await html.text()).not.toMatch(/https?:\/\/(?!127\.0\.0\.1)/);
    expect((await fetch(`${productionBase}/graphiql/graphiql.js`)).status).toBe(404);
    expect((await fetch(`${productionBase}/inbox/`)).status).toBe(404);
  });
});
