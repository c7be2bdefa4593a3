/**
 * Herald's logs in production, from real processes at `LOG_LEVEL=debug` (the lowest
 * level Herald writes at): every line is one JSON object with `level` and `time`; the
 * connection and request ids are bound on their lines; a refused `Origin` is logged once
 * and names `CORS_ORIGINS`; and no token, secret or notification text appears anywhere
 * in the whole output of a run with subscriptions on every transport, sends, refused
 * tokens, errors and a shutdown.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, closeGrpcClients, feedClient, grpcSend, publisherClient, readFeed } from '../support/grpc.js';
import { postGraphQL, SEND } from '../support/http.js';
import { startHeraldProcess, stopAllProcesses, type HeraldProcess } from '../support/process.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import { serviceToken, TEST_SECRET, userToken } from '../support/tokens.js';
import { closeAllClients, collect, ON_NOTIFICATION, refusedUpgrade, wsClient } from '../support/ws.js';

let redis: RedisServer;
let subscribe: HeraldProcess;
let publish: HeraldProcess;

beforeAll(async () => {
  redis = await startRedisServer();
  const env = { REDIS_URL: redis.url, LOG_LEVEL: 'debug' };
  [subscribe, publish] = await Promise.all([startHeraldProcess('subscribe', { env }), startHeraldProcess('publish', { env })]);
});
afterAll(async () => {
  closeGrpcClients();
  await closeAllClients();
  await stopAllProcesses();
  await redis.stop();
});

/** Each line of `output`, parsed (a line that is not JSON fails the test, naming it). */
function parsedLines(output: string): Array<Record<string, unknown>> {
  return output
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      try {
        return JSON.parse(line) as Record<string, unknown>;
      } catch {
        throw new Error(`not a JSON line: ${line}`);
      }
    });
}

describe('logs in production', () => {
  it('are JSON lines with ids bound, and hold no token, secret or notification text', async () => {
    const used: string[] = [TEST_SECRET];
    const token = (made: string): string => (used.push(made), made);
    const text = (made: string): string => (used.push(made), made);
    const subscribeUrl = `http://127.0.0.1:${subscribe.subscribePort}/graphql`;
    const publishUrl = `http://127.0.0.1:${publish.publishPort}/graphql`;

    // Subscriptions on every transport.
    const ws = collect(wsClient(subscribeUrl.replace('http', 'ws'), { token: token(userToken('lou')) }), ON_NOTIFICATION, { userName: 'lou' });
    const sse = await fetch(subscribeUrl, {
      method: 'POST',
      headers: { accept: 'text/event-stream', 'content-type': 'application/json', authorization: `Bearer ${token(userToken('lou'))}` },
      body: JSON.stringify({ query: ON_NOTIFICATION, variables: { userName: 'lou' } }),
    });
    const feed = readFeed(feedClient(subscribe.grpcPort ?? 0).feed({ userName: 'lou' }, bearer(token(userToken('lou', {}, 1800)))));

    // Sends over HTTP (one with the caller's request id) and gRPC, until all three hear one.
    const service = token(serviceToken());
    const first = text(`first secret-ish text ${Math.random()}`);
    for (let attempt = 0; ws.results.length === 0 || feed.events.length === 0; attempt++) {
      const { body } = await postGraphQL(publishUrl, SEND, { token: service, variables: { to: 'lou', text: first }, headers: { 'X-Request-Id': 'caller-id-1' } });
      expect(body.errors).toBeUndefined();
      if (attempt > 50) throw new Error('the subscriptions never heard a notification');
      await Promise.race([ws.nth(0, 200).catch(() => undefined), feed.nth(0, 200).catch(() => undefined)]);
    }
    await grpcSend(publisherClient(publish.publishGrpcPort ?? 0), service, { to: 'lou', text: text(`grpc text ${Math.random()}`) });

    // Refusals and errors: a forged token, an expired one, a malformed header, a bad document, a foreign origin.
    const forged = token(`${serviceToken()}x`);
    expect((await postGraphQL(publishUrl, SEND, { token: forged, variables: { to: 'lou', text: text('never sent 1') } })).status).toBe(401);
    const expired = token(userToken('lou', {}, -60));
    expect((await postGraphQL(publishUrl, SEND, { token: expired, variables: { to: 'lou', text: text('never sent 2') } })).status).toBe(401);
    expect(
      (await postGraphQL(publishUrl, SEND, { headers: { Authorization: token('Basic bG91OnB3') }, variables: { to: 'lou', text: text('never sent 3') } })).status,
    ).toBe(401);
    expect((await postGraphQL(publishUrl, `mutation { sendNotification(to: "lou", text: "${text('in a bad document')}") { nope } }`, { token: service })).status).toBe(400);
    const refusedWs = wsClient(subscribeUrl.replace('http', 'ws'), { token: forged });
    await collect(refusedWs, ON_NOTIFICATION, { userName: 'lou' }).ended();
    for (let n = 0; n < 3; n++) {
      expect(await refusedUpgrade(subscribeUrl.replace('http', 'ws'), 'graphql-transport-ws', { Origin: 'https://elsewhere.example' })).toBe(403);
    }
    expect((await fetch(publishUrl, { method: 'POST', headers: { Origin: 'https://elsewhere.example' } })).status).toBe(403);

    // And a shutdown, with everything open.
    await Promise.all([subscribe.stop('SIGTERM'), publish.stop('SIGTERM')]);
    await sse.body?.cancel().catch(() => undefined);

    const output = subscribe.output() + publish.output();
    const lines = parsedLines(output);
    for (const line of lines) {
      expect(typeof line['level']).toBe('number');
      expect(typeof line['time']).toBe('string');
      expect(['subscribe', 'publish']).toContain(line['role']);
    }
    for (const secret of used) expect(output.includes(secret), `the logs hold ${secret.slice(0, 24)}…`).toBe(false);

    const messages = (where: HeraldProcess) => parsedLines(where.output());
    const debug = 20;
    expect(messages(subscribe).some((line) => line['level'] === debug && /^ws-\d+$/.test(String(line['connection'])))).toBe(true);
    expect(messages(subscribe).some((line) => line['level'] === debug && /^sse-\d+$/.test(String(line['connection'])))).toBe(true);
    expect(messages(subscribe).some((line) => line['level'] === debug && /^grpc-\d+$/.test(String(line['connection'])))).toBe(true);
    expect(messages(publish).some((line) => line['request'] === 'caller-id-1')).toBe(true);
    expect(messages(publish).some((line) => /^req-\d+$/.test(String(line['request'])))).toBe(true);
    const warn = 40;
    const originLines = messages(subscribe).filter((line) => String(line['msg']).includes('https://elsewhere.example'));
    expect(originLines).toHaveLength(1);
    expect(originLines[0]?.['level']).toBe(warn);
    expect(String(originLines[0]?.['msg'])).toContain('CORS_ORIGINS');
    expect(messages(publish).filter((line) => String(line['msg']).includes('https://elsewhere.example'))).toHaveLength(1);
    expect(messages(subscribe).some((line) => String(line['msg']).includes('SIGTERM: stopping'))).toBe(true);
  });
});
