/**
 * The ping flood (an anonymous client once exhausted a 2 GB heap with it in seconds),
 * against real processes: clients that send graphql-ws
 * `ping` messages of 60 KB as fast as they can and never read their sockets — a new
 * anonymous one every second and a new authenticated one every two, each resetting its
 * connection after three — while a healthy subscriber receives notifications published
 * at a steady rate through a publish process.
 *
 * Before the send bound, every `pong` waited in the subscribe server's heap: a 256 MB
 * heap was exhausted within seconds and the process died, dropping every client; and
 * each reset wrote a log line per waiting answer (26,000 for one client here).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { waitFor } from '../../support/herald.js';
import { postGraphQL } from '../../support/http.js';
import { startHeraldProcess, stopAllProcesses, type HeraldProcess } from '../../support/process.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';
import { serviceToken, userToken } from '../../support/tokens.js';

/** Growth of the subscribe process' RSS over the flood, from its level with the healthy client connected. */
// Peaks measured here: 14–41 MB on Node 20, 111 MB on Node 24 (its young generation is
// larger, and the flood is mostly garbage); without the bound, the process died at its
// 256 MB heap within seconds.
const RSS_GROWTH_BOUND = 160 * 1024 * 1024;
/**
 * The healthy subscriber's 99th-percentile delivery time (publish request to arrival):
 * tens of ms on a quiet machine, a few hundred with the machine loaded; a process
 * swamped by the flood (collecting near its heap limit) takes seconds, then dies.
 */
const P99_BOUND_MS = 2000;
const FLOOD_MS = 8000;
const PUBLISH_EVERY_MS = 25;

let redis: RedisServer;
let subscribe: HeraldProcess;
let publish: HeraldProcess;
const children: ChildProcess[] = [];
const sockets: WebSocket[] = [];

beforeAll(async () => {
  redis = await startRedisServer();
  [subscribe, publish] = await Promise.all([
    // A small heap, so an unbounded buffer would kill it within the test.
    startHeraldProcess('subscribe', { env: { REDIS_URL: redis.url }, nodeArgs: ['--max-old-space-size=256'] }),
    startHeraldProcess('publish', { env: { REDIS_URL: redis.url } }),
  ]);
});
afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  for (const socket of sockets) socket.terminate();
  await stopAllProcesses();
  await redis.stop();
});

/**
 * What the reset test's client lets wait in its own process: it sends as fast as the
 * server reads, and past this its pings would pile up in the test's heap, not the server's.
 */
const OWN_BUFFER = 1024 * 1024;

/** The flooders, in a process of their own (`test/support/ping-flooder.ts`). */
function startFlooders(url: string, token: string): { started: Promise<void>; count(): number; exited: Promise<unknown> } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/ping-flooder.ts'], {
    cwd: fileURLToPath(new URL('../../../', import.meta.url)),
    env: { ...process.env, FLOOD_URL: url, FLOOD_TOKEN: token, FLOOD_MS: String(FLOOD_MS) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  let count = 0;
  let markStarted = (): void => undefined;
  const started = new Promise<void>((resolve) => (markStarted = resolve));
  child.stdout.on('data', (chunk: Buffer) => {
    count += chunk.toString().split('\n').filter((line) => line === 'flooder').length;
    if (count > 0) markStarted();
  });
  return { started, count: () => count, exited: once(child, 'exit') };
}

/** Lines the subscribe process has printed so far. */
const logLines = (): string[] => subscribe.output().split('\n').filter((line) => line !== '');

it('a flooder that resets its connection with pongs waiting is logged once, as the client\'s doing', async () => {
  const before = logLines().length;
  const socket = new WebSocket(`ws://127.0.0.1:${subscribe.subscribePort}/graphql`, 'graphql-transport-ws');
  sockets.push(socket);
  socket.on('error', () => undefined);
  await new Promise((resolve) => socket.once('open', resolve));
  const tcp = (socket as unknown as { _socket: { pause(): void; bytesWritten: number; writableLength: number } })._socket;
  tcp.pause();
  // Small pings, so that thousands of answers wait at once when it goes away.
  const ping = JSON.stringify({ type: 'ping', payload: { p: 'x'.repeat(1000) } });
  const taken = (): number => tcp.bytesWritten - tcp.writableLength;
  let last = -1;
  let since = Date.now();
  while (Date.now() - since < 300 && taken() < 32 * 1024 * 1024) {
    while (socket.bufferedAmount < OWN_BUFFER) socket.send(ping);
    await new Promise((resolve) => setTimeout(resolve, 2));
    if (taken() !== last) {
      last = taken();
      since = Date.now();
    }
  }
  socket.terminate();

  const fromNow = (): string[] => logLines().slice(before);
  await waitFor(() => fromNow().length > 0, 'the reset to be logged');
  // A bounded wait for any further line about it: each waiting answer once made one.
  await new Promise((resolve) => setTimeout(resolve, 500));
  // One JSON line, at warn, bound to the connection it is about.
  expect(fromNow().map((line) => JSON.parse(line) as Record<string, unknown>)).toEqual([
    expect.objectContaining({ level: 40, connection: expect.stringMatching(/^ws-\d+$/), msg: expect.stringMatching(/^herald: websocket client peer-reset: .*ECONNRESET/) }),
  ]);
});

/** A graphql-ws client's error: a close event (code and reason) or an error. */
function explain(error: unknown): string {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const { code, reason } = error as { code: unknown; reason?: unknown };
    return `closed with ${String(code)} ${String(reason ?? '')}`;
  }
  return String(error);
}

function percentile(values: number[], fraction: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(fraction * sorted.length) - 1)] ?? NaN;
}

it('flooders that never read neither exhaust the subscribe server nor delay a healthy subscriber', async () => {
  const wsUrl = `ws://127.0.0.1:${subscribe.subscribePort}/graphql`;
  const publishUrl = `http://127.0.0.1:${publish.publishPort}/graphql`;
  const publisher = serviceToken();

  // The healthy subscriber, with the real graphql-ws client.
  const sentAt = new Map<string, number>();
  const latencies: number[] = [];
  const received = new Set<string>();
  let subscriptionError: unknown;
  const client = createClient({ url: wsUrl, webSocketImpl: WebSocket, retryAttempts: 0, connectionParams: { authorization: `Bearer ${userToken('alice')}` } });
  let wake = (): void => undefined;
  client.subscribe<{ onNotificationReceived: { text: string } }>(
    { query: 'subscription { onNotificationReceived(userName: "alice") { text } }' },
    {
      next: (result) => {
        const text = result.data?.onNotificationReceived.text ?? '';
        const started = sentAt.get(text);
        if (started !== undefined && !received.has(text)) latencies.push(performance.now() - started);
        received.add(text);
        wake();
      },
      error: (error) => {
        subscriptionError = error;
        wake();
      },
      complete: () => undefined,
    },
  );
  const arrived = (text: string, timeoutMs: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`"${text}" did not arrive within ${timeoutMs} ms (error: ${explain(subscriptionError)})`)), timeoutMs);
      wake = () => {
        if (!received.has(text) && subscriptionError === undefined) return;
        clearTimeout(timer);
        if (subscriptionError !== undefined) reject(new Error(`the healthy subscription failed: ${explain(subscriptionError)}`));
        else resolve();
      };
      wake();
    });
  const sendOne = async (text: string): Promise<void> => {
    sentAt.set(text, performance.now());
    const response = await postGraphQL(publishUrl, `mutation { sendNotification(to: "alice", text: "${text}") { id } }`, { token: publisher });
    if (response.body.errors) throw new Error(`send failed: ${JSON.stringify(response.body.errors)}`);
  };
  // Subscribing is asynchronous: send until one arrives.
  for (let n = 0; ; n++) {
    if (n === 50) throw new Error(`the healthy subscription never went live (error: ${explain(subscriptionError)})`);
    await sendOne(`warm-${n}`);
    if (await arrived(`warm-${n}`, 1000).then(() => true, () => false)) break;
  }
  latencies.length = 0;
  const rssBefore = subscribe.rss();
  const linesBefore = logLines().length;

  let peakRss = rssBefore;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, subscribe.rss())), 50);
  const flooders = startFlooders(wsUrl, userToken('mallory'));
  await flooders.started;

  const sends: Array<Promise<void>> = [];
  const started = performance.now();
  for (let n = 0; performance.now() - started < FLOOD_MS; n++) {
    sends.push(sendOne(`n-${n}`));
    await new Promise((resolve) => setTimeout(resolve, PUBLISH_EVERY_MS));
  }
  await Promise.all(sends);
  await flooders.exited;
  const texts = [...sentAt.keys()].filter((text) => text.startsWith('n-'));
  await arrived(texts.at(-1)!, 5000);
  clearInterval(sampler);

  const missing = texts.filter((text) => !received.has(text));
  const p99 = percentile(latencies, 0.99);
  const growth = peakRss - rssBefore;
  const lines = logLines().length - linesBefore;
  const flooderCount = flooders.count();
  console.info(
    `ping flood: ${flooderCount} flooders, ${texts.length} notifications, p50 ${percentile(latencies, 0.5).toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${Math.max(...latencies).toFixed(1)} ms; RSS ${(rssBefore / 2 ** 20).toFixed(0)} → peak ${(peakRss / 2 ** 20).toFixed(0)} MB; ${lines} log lines`,
  );

  expect(subscribe.child.exitCode).toBeNull();
  expect(subscribe.child.signalCode).toBeNull();
  expect(missing).toEqual([]);
  expect(subscriptionError).toBeUndefined();
  expect(p99).toBeLessThan(P99_BOUND_MS);
  expect(growth).toBeLessThan(RSS_GROWTH_BOUND);
  // A line per flooder's connection (its reset) and kind at most, never one per ping.
  expect(lines).toBeLessThanOrEqual(2 * flooderCount + 5);
  await client.dispose();
});
