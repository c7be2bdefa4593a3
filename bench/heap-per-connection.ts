/**
 * What one idle subscribed WebSocket holds in Herald's subscribe process, by kind of
 * object: `npx tsx bench/heap-per-connection.ts [connections]` (run
 * `npm run build` first). It starts a compiled subscribe and publish server on their own
 * `redis-server`, takes a V8 heap snapshot of the subscribe process with no connection,
 * opens the connections with the bench's load clients (each subscribed and sent one
 * warm-up, as `npm run bench`'s idle row does), takes a second snapshot, and prints the
 * difference per connection: V8 heap bytes by constructor (self sizes), the heap in
 * total, and RSS. Snapshots are left in `bench/results/heap/` for a closer look (Chrome
 * DevTools' Memory tab, "Comparison").
 *
 * `PROMOTED=1` looks at what the openings leave behind instead: a snapshot holds only
 * live objects, while RSS also holds what outlived the young generation during the
 * burst and died in the old one, uncollected until V8 marks it. The subscribe process
 * runs with its inspector on port 4706, and V8's sampling heap profiler (every 256
 * bytes) keeps the allocations collected by a full GC but not those a scavenge freed:
 * it prints that total per connection (live and promoted garbage, and young objects a
 * full GC swept before a scavenge did: an upper bound on what was promoted), and the
 * allocation stacks that hold most of it.
 *
 *   PROMOTED=1 npx tsx bench/heap-per-connection.ts 3000
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import jwt from 'jsonwebtoken';
import { startRedisServer } from '../test/support/redis-server.js';
import type { ClientStats } from './load-client.js';
import WebSocket from 'ws';
import { ask, forkHelper } from './ipc.js';

const CONNECTIONS = Number(process.argv[2] ?? '3000');
/** Sample promoted garbage instead of taking snapshots (see above). */
const PROMOTED = process.env['PROMOTED'] === '1';
const INSPECTOR_PORT = 4706;
const ROOT = new URL('..', import.meta.url).pathname;
const DIR = join(ROOT, 'bench/results/heap');
const SECRET = 'bench-secret-that-is-at-least-32-bytes-long!';
const QUERY = 'subscription On($userName: String!) { onNotificationReceived(userName: $userName) { text } }';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const sign = (claims: object) => jwt.sign(claims, SECRET, { algorithm: 'HS256', expiresIn: 3600 });

/** The subscribe process's V8 heap spaces (committed bytes) and external memory, from its `/metrics`. */
async function memory(): Promise<Map<string, number>> {
  const text = await (await fetch('http://127.0.0.1:4704/metrics')).text();
  const figures = new Map<string, number>();
  for (const match of text.matchAll(/^nodejs_(heap_space_size_(?:total|used)_bytes|external_memory_bytes|heap_size_used_bytes)(?:\{([^}]*)\})? (\d+)/gm)) {
    const space = /space="(\w+)"/.exec(match[2] ?? '')?.[1];
    figures.set(`${match[1] as string}${space === undefined ? '' : ` ${space}`}`, Number(match[3]));
  }
  return figures;
}

const rssKb = (pid: number): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);

async function waitReady(url: string): Promise<void> {
  for (let tries = 0; tries < 300; tries++) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not up yet
    }
    await sleep(100);
  }
  throw new Error(`${url} did not become ready`);
}

/** Signals `pid` to write a heap snapshot (`--heapsnapshot-signal`) and waits until it is whole. */
async function snapshot(pid: number): Promise<string> {
  const before = new Set(readdirSync(DIR));
  process.kill(pid, 'SIGUSR2');
  for (;;) {
    await sleep(500);
    const file = readdirSync(DIR).find((name) => !before.has(name) && name.endsWith('.heapsnapshot'));
    if (file === undefined) continue;
    const size = statSync(join(DIR, file)).size;
    await sleep(1500);
    if (size > 0 && statSync(join(DIR, file)).size === size) return join(DIR, file);
  }
}

interface Totals {
  count: number;
  bytes: number;
}

/** Self sizes summed by node type and constructor name. */
function summarize(path: string): { byKind: Map<string, Totals>; total: number } {
  const snapshot = JSON.parse(readFileSync(path, 'utf8')) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = snapshot.snapshot.meta.node_fields;
  const types = snapshot.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const byKind = new Map<string, Totals>();
  let total = 0;
  for (let n = 0; n < snapshot.nodes.length; n += width) {
    const type = types[snapshot.nodes[n + typeAt] as number] ?? '?';
    let name = snapshot.strings[snapshot.nodes[n + nameAt] as number] ?? '?';
    // Strings and code are told apart by type, not by their text.
    if (type === 'string' || type === 'concatenated string' || type === 'sliced string' || type === 'number' || type === 'code') name = '';
    if (name.length > 60) name = `${name.slice(0, 57)}...`;
    const key = `${type}${name ? ` ${name}` : ''}`;
    const size = snapshot.nodes[n + sizeAt] as number;
    const entry = byKind.get(key) ?? { count: 0, bytes: 0 };
    entry.count += 1;
    entry.bytes += size;
    byKind.set(key, entry);
    total += size;
  }
  return { byKind, total };
}

/** A call of the DevTools protocol on the subscribe process's inspector. */
type Inspector = { send(method: string, params?: object): Promise<Record<string, unknown>>; close(): void };

async function openInspector(port: number): Promise<Inspector> {
  const [target] = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as Array<{ webSocketDebuggerUrl: string }>;
  if (target === undefined) throw new Error('the subscribe process has no inspector target');
  const socket = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  const waiting = new Map<number, { resolve(result: Record<string, unknown>): void; reject(error: Error): void }>();
  socket.on('message', (data) => {
    const message = JSON.parse(String(data)) as { id?: number; result?: Record<string, unknown>; error?: { message: string } };
    const caller = message.id === undefined ? undefined : waiting.get(message.id);
    if (caller === undefined || message.id === undefined) return;
    waiting.delete(message.id);
    if (message.error) caller.reject(new Error(message.error.message));
    else caller.resolve(message.result ?? {});
  });
  // The subscribe process gone: nothing waits for an answer that cannot come.
  socket.once('close', () => {
    for (const caller of waiting.values()) caller.reject(new Error('the inspector closed'));
    waiting.clear();
  });
  let next = 0;
  return {
    send: (method, params = {}) =>
      new Promise((resolve, reject) => {
        const id = ++next;
        waiting.set(id, { resolve, reject });
        socket.send(JSON.stringify({ id, method, params }));
      }),
    close: () => socket.close(),
  };
}

interface SamplingNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: SamplingNode[];
}

/** Sampled bytes by allocation stack (its innermost `depth` frames, innermost first). */
function byStack(head: SamplingNode, depth = 6): Map<string, number> {
  const stacks = new Map<string, number>();
  const walk = (node: SamplingNode, frames: string[]): void => {
    const { functionName, url, lineNumber } = node.callFrame;
    const here = [...frames, `${functionName || '(anonymous)'} ${url.split('/').slice(-2).join('/')}:${lineNumber + 1}`];
    if (node.selfSize > 0) {
      const key = here.slice(-depth).reverse().join(' < ');
      stacks.set(key, (stacks.get(key) ?? 0) + node.selfSize);
    }
    for (const child of node.children) walk(child, here);
  };
  walk(head, []);
  return stacks;
}

const children: ChildProcess[] = [];
function startNode(args: string[], env: Record<string, string>, nodeArgs: string[] = []): ChildProcess {
  const child = spawn(process.execPath, [...nodeArgs, 'dist/main.js', ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(child);
  return child;
}


async function main(): Promise<void> {
  rmSync(DIR, { recursive: true, force: true });
  mkdirSync(DIR, { recursive: true });
  const redis = await startRedisServer();
  const env = {
    REDIS_URL: redis.url,
    JWT_SECRET: SECRET,
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    CHANNEL_PREFIX: 'heap',
    SUBSCRIBE_PORT: '4700',
    PUBLISH_PORT: '4701',
    GRPC_PORT: '4702',
    PUBLISH_GRPC_PORT: '4703',
    KEEPALIVE_MS: '600000',
    METRICS_PORT: '4704',
  };
  const clients: ChildProcess[] = [];
  try {
    const subscribe = startNode(['subscribe'], env, PROMOTED ? [`--inspect=127.0.0.1:${INSPECTOR_PORT}`] : ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${DIR}`]);
    startNode(['publish'], { ...env, METRICS_PORT: '4705' });
    await waitReady('http://127.0.0.1:4700/readyz');
    await waitReady('http://127.0.0.1:4701/readyz');
    const pid = subscribe.pid ?? 0;
    await sleep(1000);
    const inspector = PROMOTED ? await openInspector(INSPECTOR_PORT) : undefined;
    let emptyPath = '';
    if (inspector) {
      await inspector.send('HeapProfiler.enable');
      await inspector.send('HeapProfiler.collectGarbage');
      await inspector.send('HeapProfiler.startSampling', { samplingInterval: 256, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: false });
    } else {
      emptyPath = await snapshot(pid);
    }
    await sleep(1000);
    const rssBefore = rssKb(pid);
    const memoryBefore = await memory();

    const users = Array.from({ length: CONNECTIONS }, (_, n) => `heap${n}`);
    for (let n = 0; n < 2; n++) clients.push(forkHelper('load-client.ts'));
    await Promise.all(
      clients.map((client, n) =>
        ask(
          client,
          { cmd: 'open', url: 'ws://127.0.0.1:4700/graphql', connections: users.filter((_, index) => index % clients.length === n).map((user) => ({ user, token: sign({ sub: user, tenant: 'acme' }) })), query: QUERY },
          'opened',
        ),
      ),
    );
    const service = sign({ sub: 'bench', tenant: 'acme', scope: 'notifications:publish' });
    for (;;) {
      for (let n = 0; n < users.length; n += 500) {
        await fetch('http://127.0.0.1:4701/graphql', {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${service}` },
          body: JSON.stringify({ query: 'mutation B($n: [NotificationInput!]!) { sendNotifications(notifications: $n) { id } }', variables: { n: users.slice(n, n + 500).map((to) => ({ to, text: 'warm-up' })) } }),
        });
      }
      await sleep(500);
      const counts = await Promise.all(clients.map((client) => ask<ClientStats>(client, { cmd: 'count' }, 'count')));
      if (Math.min(...counts.map((count) => count.minPerConnection)) >= 1) break;
    }
    await sleep(2000);
    const rssAfter = rssKb(pid);
    const memoryAfter = await memory();
    console.info(`${CONNECTIONS} idle subscribed connections; per connection:`);
    console.info(`RSS ${((rssAfter - rssBefore) / CONNECTIONS).toFixed(2)} KB`);
    for (const [name, after] of memoryAfter) console.info(`  ${name}: ${((after - (memoryBefore.get(name) ?? 0)) / CONNECTIONS / 1024).toFixed(2)} KB`);
    if (inspector) {
      await inspector.send('HeapProfiler.collectGarbage');
      const { profile } = (await inspector.send('HeapProfiler.stopSampling')) as { profile: { head: SamplingNode } };
      inspector.close();
      const stacks = [...byStack(profile.head)].sort((a, b) => b[1] - a[1]);
      const total = stacks.reduce((sum, [, bytes]) => sum + bytes, 0);
      console.info(`allocated and not freed by a scavenge (live, or promoted and collected by the full GC): ${(total / CONNECTIONS / 1024).toFixed(2)} KB`);
      console.info('| bytes | allocated at (innermost first) |\n|---:|---|');
      for (const [stack, bytes] of stacks.slice(0, 30)) console.info(`| ${(bytes / CONNECTIONS).toFixed(0)} | ${stack} |`);
      return;
    }
    const fullPath = await snapshot(pid);

    const empty = summarize(emptyPath);
    const full = summarize(fullPath);
    const rows = [...full.byKind]
      .map(([kind, totals]) => {
        const was = empty.byKind.get(kind) ?? { count: 0, bytes: 0 };
        return { kind, count: (totals.count - was.count) / CONNECTIONS, bytes: (totals.bytes - was.bytes) / CONNECTIONS };
      })
      .filter((row) => Math.abs(row.bytes) >= 8)
      .sort((a, b) => b.bytes - a.bytes);
    console.info(`V8 heap (live objects) ${((full.total - empty.total) / CONNECTIONS / 1024).toFixed(2)} KB`);
    console.info('| bytes | objects | kind |\n|---:|---:|---|');
    for (const row of rows) console.info(`| ${row.bytes.toFixed(0)} | ${row.count.toFixed(2)} | ${row.kind} |`);
  } finally {
    await Promise.all(clients.map((client) => ask(client, { cmd: 'close' }, 'closed').catch(() => undefined)));
    for (const child of children) child.kill();
    await redis.stop();
  }
}

await main();
