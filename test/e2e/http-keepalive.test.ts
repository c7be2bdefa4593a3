/**
 * `HTTP_KEEPALIVE_MS`: how long both servers keep an idle HTTP connection. A load balancer
 * keeps its connections to a server for its own idle timeout (60 s on AWS' ALB) and sends
 * the next request on one of them; with Node's default of 5 s the server would already be
 * closing it, and the balancer answers that request with a 502. Observed through a real
 * kept-alive client: which connection carried each request, and when the server closed it.
 */
import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { closeAllFaultProxies, startFaultProxy } from '../support/fault-proxy.js';
import { DEFAULTS, startHeraldPair, stopAll } from '../support/herald.js';
import { SEND } from '../support/http.js';
import { startHeraldProcess, stopAllProcesses } from '../support/process.js';
import { startRedisServer } from '../support/redis-server.js';
import { serviceToken } from '../support/tokens.js';

const agents: Agent[] = [];
afterEach(() => agents.splice(0).forEach((agent) => agent.destroy()));
afterAll(async () => {
  await closeAllFaultProxies();
  await stopAll();
});

/**
 * A client that keeps connections as long as the server does. Node's agent has no idle
 * timeout of its own unless given one (and only then follows the server's `Keep-Alive`
 * hint), so a connection is reused whenever the server has not closed it: as a balancer
 * does.
 */
function keptAliveClient(): Agent {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  agents.push(agent);
  return agent;
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  socket: Socket;
  /** Whether the request went out on a connection an earlier request had used. */
  reused: boolean;
}

function call(agent: Agent, url: string, init: { method?: string; body?: string; token?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(url, {
      agent,
      method: init.method ?? 'GET',
      headers: {
        ...(init.body === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(init.body) }),
        ...(init.token === undefined ? {} : { Authorization: `Bearer ${init.token}` }),
      },
    });
    request.once('error', reject);
    request.once('response', (response) => {
      response.resume();
      response.once('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, socket: request.socket as Socket, reused: request.reusedSocket }));
    });
    request.end(init.body);
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const healthz = (graphqlUrl: string) => graphqlUrl.replace(/\/graphql$/, '/healthz');
const sendBody = JSON.stringify({ query: SEND, variables: { to: 'alice', text: 'kept alive' } });

describe('HTTP keep-alive', () => {
  it('both servers keep an idle connection for 72 s by default, and say so', async () => {
    expect(DEFAULTS.httpKeepAliveMs).toBe(72_000);
    const { subscribe, publish } = await startHeraldPair();
    const publishClient = keptAliveClient();
    const sent = await call(publishClient, publish.url, { method: 'POST', body: sendBody, token: serviceToken() });
    expect(sent.status).toBe(200);
    expect(sent.headers['keep-alive']).toBe('timeout=72');
    const subscribeClient = keptAliveClient();
    const health = await call(subscribeClient, healthz(subscribe.httpUrl));
    expect(health.headers['keep-alive']).toBe('timeout=72');

    // Past Node's own 5 s, the connection is still the server's: the next request uses it.
    await sleep(5_500);
    const again = await call(publishClient, publish.url, { method: 'POST', body: sendBody, token: serviceToken() });
    expect(again.status).toBe(200);
    expect(again.reused).toBe(true);
    expect(again.socket).toBe(sent.socket);
    const healthAgain = await call(subscribeClient, healthz(subscribe.httpUrl));
    expect(healthAgain.reused).toBe(true);
    expect(healthAgain.socket).toBe(health.socket);
  });

  it('fetch with its defaults (what @herald/client publishes with) keeps its connection past 5 s too', async () => {
    const { publish } = await startHeraldPair();
    // A TCP proxy in front of the publish server counts the connections fetch opens.
    const proxy = await startFaultProxy(publish.port);
    const url = `http://127.0.0.1:${proxy.port}/graphql`;
    const post = () =>
      fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${serviceToken()}` }, body: sendBody });
    const first = await post();
    expect(first.headers.get('keep-alive')).toBe('timeout=72');
    await first.text();
    // fetch (undici) keeps an idle connection for the server's hint less a second; with
    // Node's 5 s it would have dropped this one after 4 s and opened another.
    await sleep(5_500);
    const second = await post();
    expect(second.status).toBe(200);
    await second.text();
    expect(proxy.accepted).toBe(1);
  });

  it('closes a connection idle for longer than HTTP_KEEPALIVE_MS, and not before', async () => {
    // 4 s against an idle pause of 0.8 s: a busy machine's stall of 3 s still sees it open.
    const { subscribe, publish } = await startHeraldPair(undefined, { httpKeepAliveMs: 4000 });
    for (const url of [publish.url, healthz(subscribe.httpUrl)]) {
      const client = keptAliveClient();
      const init = url === publish.url ? { method: 'POST', body: sendBody, token: serviceToken() } : {};
      const first = await call(client, url, init);
      expect(first.headers['keep-alive']).toBe('timeout=4');
      let closedAt: number | undefined;
      first.socket.once('close', () => (closedAt = Date.now()));

      // Idle for less than the timeout: still open, and the next request reuses it.
      await sleep(800);
      expect(closedAt).toBeUndefined();
      // Sent before the server answers it, so the server's idle time starts after this.
      const secondSentAt = Date.now();
      const second = await call(client, url, init);
      expect(second.reused).toBe(true);
      expect(second.socket).toBe(first.socket);

      // Idle for longer: the server closes it, and not before the timeout has passed.
      const deadline = secondSentAt + 4000 + 5000;
      while (closedAt === undefined && Date.now() < deadline) await sleep(50);
      expect(closedAt, `not closed ${deadline - secondSentAt} ms after the last request`).toBeDefined();
      expect((closedAt ?? 0) - secondSentAt, 'closed before HTTP_KEEPALIVE_MS had passed').toBeGreaterThanOrEqual(3990);
    }
  });

  it('SIGTERM closes an idle kept-alive connection at once: its 72 s do not hold the stop', async () => {
    const redis = await startRedisServer();
    try {
      // A drain deadline of 20 s: a stop that waited on the idle connection would end there.
      const publish = await startHeraldProcess('publish', { env: { REDIS_URL: redis.url, SHUTDOWN_DRAIN_MS: '20000' } });
      const client = keptAliveClient();
      const sent = await call(client, `http://127.0.0.1:${publish.publishPort}/graphql`, { method: 'POST', body: sendBody, token: serviceToken() });
      expect(sent.headers['keep-alive']).toBe('timeout=72');
      let closedAt: number | undefined;
      sent.socket.once('close', () => (closedAt = Date.now()));
      const signalled = Date.now();
      expect(publish.child.kill('SIGTERM')).toBe(true);
      expect(await publish.exited).toBe(0);
      while (closedAt === undefined && Date.now() - signalled < 20_000) await sleep(20);
      expect(closedAt, 'the idle connection was never closed').toBeDefined();
      expect((closedAt ?? 0) - signalled, 'the idle connection outlived the signal by half the drain deadline').toBeLessThan(10_000);
      expect(Date.now() - signalled).toBeLessThan(10_000);
    } finally {
      await stopAllProcesses();
      await redis.stop();
    }
  });
});
