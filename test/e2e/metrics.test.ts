/**
 * `METRICS_PORT`: real subscribe and publish processes on a real Redis serve Prometheus
 * text at `/metrics` on that port only (their public ports answer 404), and the numbers
 * move when a WebSocket and an SSE stream subscribe, a notification is sent and
 * delivered, and a bad token is refused.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/herald.js';
import { postGraphQL, SEND } from '../support/http.js';
import { listeningAddresses, startHeraldProcess, stopAllProcesses, type HeraldProcess } from '../support/process.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import { serviceToken, userToken } from '../support/tokens.js';
import { closeAllClients, collect, ON_NOTIFICATION, wsClient } from '../support/ws.js';

let redis: RedisServer;
let subscribe: HeraldProcess;
let publish: HeraldProcess;

beforeAll(async () => {
  redis = await startRedisServer();
  const env = { REDIS_URL: redis.url, METRICS_PORT: '0', REDIS_COMMAND_TIMEOUT_MS: '300' };
  [subscribe, publish] = await Promise.all([startHeraldProcess('subscribe', { env }), startHeraldProcess('publish', { env })]);
});
afterAll(async () => {
  await closeAllClients();
  await stopAllProcesses();
  await redis.stop();
});

async function scrape(process: HeraldProcess): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${process.metricsPort}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toContain('text/plain');
  return response.text();
}

/** The value of the sample `name{labels}` (labels as Prometheus prints them, `role` first), or undefined. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const [series = '', value = ''] = line.split(/ (?=[^ ]+$)/);
    if (Object.entries(labels).every(([key, wanted]) => series.includes(`${key}="${wanted}"`))) return Number(value);
  }
  return undefined;
}

describe('METRICS_PORT', () => {
  it('serves /metrics on the internal port only: the public ports answer 404', async () => {
    expect(subscribe.metricsPort).toBeGreaterThan(0);
    expect(publish.metricsPort).toBeGreaterThan(0);
    for (const port of [subscribe.subscribePort, publish.publishPort]) {
      expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(404);
    }
    expect((await fetch(`http://127.0.0.1:${subscribe.metricsPort}/graphql`)).status).toBe(404);
  });

  it('moves every family after subscriptions, a send and a refused token', async () => {
    const before = await scrape(subscribe);
    expect(sample(before, 'herald_connections', { transport: 'websocket' })).toBe(0);
    expect(sample(before, 'herald_notifications_delivered_total')).toBe(0);

    const client = wsClient(`ws://127.0.0.1:${subscribe.subscribePort}/graphql`, { token: userToken('mia') });
    const events = collect(client, ON_NOTIFICATION, { userName: 'mia' });
    const sse = await fetch(`http://127.0.0.1:${subscribe.subscribePort}/graphql`, {
      method: 'POST',
      headers: { accept: 'text/event-stream', 'content-type': 'application/json', authorization: `Bearer ${userToken('mia')}` },
      body: JSON.stringify({ query: ON_NOTIFICATION, variables: { userName: 'mia' } }),
    });
    expect(sse.status).toBe(200);
    let during = '';
    await waitFor(async () => {
      during = await scrape(subscribe);
      return sample(during, 'herald_subscriptions', { transport: 'websocket' }) === 1 && sample(during, 'herald_subscriptions', { transport: 'sse' }) === 1;
    }, 'both subscriptions to be counted');
    expect(sample(during, 'herald_connections', { transport: 'websocket' })).toBe(1);
    expect(sample(during, 'herald_connections', { transport: 'sse' })).toBe(1);
    expect(sample(during, 'herald_connections', { transport: 'grpc' })).toBe(0);
    // The user's channel and its company's (the token names no store), shared by both subscriptions.
    expect(sample(during, 'herald_redis_channels')).toBe(2);

    const { body } = await postGraphQL(`http://127.0.0.1:${publish.publishPort}/graphql`, SEND, {
      token: serviceToken(),
      variables: { to: 'mia', text: 'counted' },
    });
    expect(body.errors).toBeUndefined();
    await events.nth(0);
    const refused = await postGraphQL(`http://127.0.0.1:${publish.publishPort}/graphql`, SEND, {
      token: `${serviceToken()}x`,
      variables: { to: 'mia', text: 'refused' },
    });
    expect(refused.status).toBe(401);

    const subscribed = await scrape(subscribe);
    expect(sample(subscribed, 'herald_notifications_delivered_total')).toBe(2);
    const published = await scrape(publish);
    expect(sample(published, 'herald_notifications_published_total')).toBe(1);
    expect(sample(published, 'herald_mutation_duration_seconds_count', { field: 'sendNotification', outcome: 'OK' })).toBe(1);
    expect(sample(published, 'herald_delivery_report_wait_seconds_count')).toBe(1);
    expect(sample(published, 'herald_auth_refusals_total', { reason: 'signature' })).toBe(1);
    for (const text of [subscribed, published]) {
      expect(sample(text, 'herald_slow_consumer_closes_total')).toBe(0);
      expect(sample(text, 'herald_redis_reconnects_total')).toBe(0);
      expect(sample(text, 'herald_redis_command_errors_total')).toBe(0);
      expect(sample(text, 'nodejs_eventloop_lag_p99_seconds')).toBeGreaterThan(0);
      expect(sample(text, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    }
    expect(subscribed).toContain('role="subscribe"');
    expect(published).toContain('role="publish"');
    await sse.body?.cancel();
  });

  it('counts Redis reconnects and failed commands', async () => {
    // Every Pub/Sub connection dropped: each process's subscriber connection comes back.
    await redis.client().call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    await waitFor(async () => (sample(await scrape(subscribe), 'herald_redis_reconnects_total') ?? 0) >= 1, 'the subscribe process to count a reconnect');
    await waitFor(async () => (sample(await scrape(publish), 'herald_redis_reconnects_total') ?? 0) >= 1, 'the publish process to count a reconnect');

    // Writes paused past REDIS_COMMAND_TIMEOUT_MS: the publish script times out, and is counted.
    await redis.client().call('CLIENT', 'PAUSE', '1500', 'WRITE');
    const { body } = await postGraphQL(`http://127.0.0.1:${publish.publishPort}/graphql`, SEND, {
      token: serviceToken(),
      variables: { to: 'mia', text: 'paused' },
    });
    expect(body.errors?.[0]?.extensions?.['code']).toMatch(/OUTCOME_UNKNOWN|SERVICE_UNAVAILABLE/);
    const published = await scrape(publish);
    expect(sample(published, 'herald_redis_command_errors_total')).toBeGreaterThanOrEqual(1);
    expect(sample(published, 'herald_mutation_duration_seconds_count', { field: 'sendNotification', outcome: String(body.errors?.[0]?.extensions?.['code']) })).toBe(1);
    await redis.client().call('CLIENT', 'UNPAUSE');
  });
});

describe('METRICS_HOST', () => {
  /** Whether something accepts a connection on `host`:`port`: true, or the error's code (ECONNREFUSED). */
  const connects = (host: string, port: number): Promise<true | string> =>
    new Promise((resolve) => {
      const socket = connect(port, host);
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    });

  it.each(['subscribe', 'publish', 'push'] as const)('%s: the metrics port listens on METRICS_HOST only, the public port stays on HOST', async (mode) => {
    // Both loopback, two addresses: 127.0.0.1 (HOST) and 127.0.0.2 (METRICS_HOST).
    const env = { REDIS_URL: redis.url, METRICS_PORT: '0', METRICS_HOST: '127.0.0.2' };
    const herald = await startHeraldProcess(mode, { env, entry: 'dist' });
    const port = herald.metricsPort ?? 0;
    expect(port).toBeGreaterThan(0);
    expect(herald.output()).toContain(`http://127.0.0.2:${port}/metrics`);
    const response = await fetch(`http://127.0.0.2:${port}/metrics`);
    expect(response.status).toBe(200);
    expect(await response.text()).toContain(`role="${mode}"`);
    // What the process bound, not what a connect reaches: another test's server may hold the
    // same port number on the other address.
    const listening = listeningAddresses(herald.pid);
    expect(listening.filter((address) => address.endsWith(`:${port}`))).toEqual([`127.0.0.2:${port}`]);
    const publicPort = herald.subscribePort ?? herald.publishPort;
    if (publicPort !== undefined) {
      expect(await connects('127.0.0.1', publicPort)).toBe(true);
      expect(listening.filter((address) => address.endsWith(`:${publicPort}`))).toEqual([`127.0.0.1:${publicPort}`]);
    }
    expect(await herald.stop()).toBe(0);
  });
});
