/**
 * Python's standard gRPC client — grpcio, the stub grpcio-tools generates from proto/,
 * `grpc.insecure_channel(target)` and nothing else — against real Herald processes on a
 * real redis-server (test/support/python-grpc.ts makes and caches its virtual environment).
 *
 * grpc-core (Python, C++, Ruby, PHP, …) sends a BDP-probe PING each time it receives data.
 * Herald once counted each of them as a strike, as if no data flowed: a default Feed was
 * ended with GOAWAY ENHANCE_YOUR_CALM `too_many_pings` after 4 notifications, and the publish
 * port sent the same GOAWAY again and again. Strikes now reset whenever the server sends
 * headers or data, as grpc-core's and grpc-go's servers account them (src/transports/grpc/ping-policy.ts).
 */
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { closeGrpcClients, frameCountingProxy } from '../support/grpc.js';
import { channels, DEFAULTS, waitFor } from '../support/herald.js';
import { startHeraldProcess, stopAllProcesses, type HeraldProcess } from '../support/process.js';
import { setUpPythonGrpc, type PythonEvent, type PythonGrpc } from '../support/python-grpc.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import { serviceToken, userToken } from '../support/tokens.js';

const NOTIFICATIONS = 200;
/** Seconds between two sends: 199 intervals make 123 s, past the two minutes asked for. */
const INTERVAL_S = 0.62;
/** Generous: the sends themselves take 123 s; a loaded machine may make each one slower. */
const SENDS_TIMEOUT_MS = 420_000;
const TEST_TIMEOUT_MS = 600_000;
/** Making the virtual environment (pip install) the first time. */
const SETUP_TIMEOUT_MS = 600_000;

let python: PythonGrpc;
let redis: RedisServer;
let subscribe: HeraldProcess;
let publish: HeraldProcess;

beforeAll(async () => {
  python = await setUpPythonGrpc();
  redis = await startRedisServer();
  [subscribe, publish] = await Promise.all([
    startHeraldProcess('subscribe', { env: { REDIS_URL: redis.url } }),
    startHeraldProcess('publish', { env: { REDIS_URL: redis.url } }),
  ]);
}, SETUP_TIMEOUT_MS);
afterAll(async () => {
  await python?.close();
  closeGrpcClients();
  await stopAllProcesses();
  await redis?.stop();
});

/** GOAWAY `too_many_pings` a Herald process sent: it logs each one. */
const tooManyPings = (herald: HeraldProcess): number => herald.output().split('\n').filter((line) => line.includes('too_many_pings')).length;
/** How often a client's channel became READY: more than once is a lost connection. */
const readyCount = (events: PythonEvent[]): number => events.filter((event) => event.event === 'state' && event.state === 'READY').length;

it(
  'a default grpcio Feed stays open for 200 notifications over 2 minutes, sent by a default grpcio Send: no GOAWAY on either port',
  async () => {
    // Each client through a proxy that counts the PINGs it sends and the GOAWAYs it gets, on the wire.
    const feedWire = await frameCountingProxy(subscribe.grpcPort!);
    const sendWire = await frameCountingProxy(publish.publishGrpcPort!);
    const feed = python.run(['feed', `127.0.0.1:${feedWire.port}`, userToken('alice'), 'alice']);
    const channel = channels.audienceChannel('acme', 'USER', 'alice');
    await waitFor(async () => (await redis.numsub(channel)) === 1 || feed.events.some((event) => event.event === 'end'), 'the Python Feed to subscribe', 60_000);

    const started = performance.now();
    const sender = python.run(['send', `127.0.0.1:${sendWire.port}`, serviceToken(), 'alice', String(NOTIFICATIONS), String(INTERVAL_S)]);
    // Fails as soon as the Feed ends, rather than when the sends are over.
    const feedEnded = feed.exited.then(() => {
      throw new Error(`the Feed ended after ${feed.events.filter((event) => event.event === 'notification').length} notifications: ${JSON.stringify(feed.events.at(-1))}`);
    });
    // Handled here too: the client is stopped after the test, and that ending is no failure.
    feedEnded.catch(() => undefined);
    await Promise.race([sender.first((event) => event.event === 'done', 'the sends to finish', SENDS_TIMEOUT_MS), feedEnded]);
    const last = `n-${NOTIFICATIONS - 1}`;
    await Promise.race([feed.first((event) => event.event === 'notification' && event.text === last, `notification ${last}`, 60_000), feedEnded]);
    const seconds = (performance.now() - started) / 1000;

    const texts = feed.events.filter((event) => event.event === 'notification').map((event) => event.text);
    const sent = sender.events.filter((event) => event.event === 'sent');
    const failed = sender.events.filter((event) => event.event === 'error');
    const figures = {
      received: texts.length,
      seconds: Math.round(seconds),
      feedPings: feedWire.pings(),
      sendPings: sendWire.pings(),
      goawaysFeedPort: feedWire.goaways(),
      goawaysPublishPort: sendWire.goaways(),
      tooManyPingsLogged: tooManyPings(subscribe) + tooManyPings(publish),
      feedReady: readyCount(feed.events),
      senderReady: readyCount(sender.events),
    };
    console.info(`Python grpcio with default options: ${JSON.stringify(figures)}`);

    expect(texts).toEqual(Array.from({ length: NOTIFICATIONS }, (_, n) => `n-${n}`));
    expect(failed).toEqual([]);
    // Each one reached the Feed's observer: it was subscribed all along.
    expect(sent.map((event) => event.receivedUsers)).toEqual(Array.from({ length: NOTIFICATIONS }, () => 1));
    expect(figures).toMatchObject({ goawaysFeedPort: 0, goawaysPublishPort: 0, tooManyPingsLogged: 0, feedReady: 1, senderReady: 1 });
    // The case at hand: the client pinged as data arrived (grpc-core's BDP probes), many times
    // more than the policy allows with no data flowing.
    expect(figures.feedPings).toBeGreaterThan(DEFAULTS.grpcKeepalive.maxPingStrikes + 1);
    expect(seconds).toBeGreaterThanOrEqual((NOTIFICATIONS - 1) * INTERVAL_S);
    // Still open.
    expect(feed.events.filter((event) => event.event === 'end')).toEqual([]);
  },
  TEST_TIMEOUT_MS,
);
