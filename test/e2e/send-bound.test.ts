/**
 * One bound on every byte waiting to be sent on a WebSocket, over real sockets: a client
 * that sends graphql-ws pings and never reads is throttled (the server stops reading it)
 * instead of growing the server's heap; a socket still over its bound when more must be
 * sent is closed with 4413 — before `connection_init` at 16 KiB (64 KiB on Node 22 on), after it at
 * `MAX_BUFFERED_BYTES`, pongs and notifications alike; one that reads again is served
 * again. Binary frames are refused.
 */
import { Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import { channels, createTestBroker, startSubscribeServer, stopAll, waitFor, type RunningSubscribeServer } from '../support/herald.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import { userToken } from '../support/tokens.js';
import { closeAllClients, rawSocket, type RawSocket } from '../support/ws.js';
import type { Broker } from '../../src/broker/types.js';
import { createMetrics } from '../../src/common/metrics.js';
import { encodeNotification } from '../../src/common/notification.js';
import { UNINITIALISED_BUFFERED_BYTES } from '../../src/transports/websocket/send-bound.js';

/**
 * Keepalive ticks far enough apart that a test can act between two of them: the flood
 * below must be throttled before the tick after it connected, or the flooder is judged
 * at a later one as silent (it never answers a ping) and cut with 1006. At 2 s a loaded
 * machine once flooded past it.
 */
const TICK_MS = 8000;

let redis: RedisServer;
/** Keepalive every {@link TICK_MS}. */
let ticking: RunningSubscribeServer;
const tickingMetrics = createMetrics({ role: 'test', processMetrics: false });
/** Keepalive out of the way, so only the traffic under test writes to a socket. */
let quiet: RunningSubscribeServer;
let publisher: Broker;

beforeAll(async () => {
  redis = await startRedisServer();
  const options = { connectionInitTimeoutMs: 60_000 };
  ticking = await startSubscribeServer((await createTestBroker(redis.url)).broker, { ...options, keepAliveMs: TICK_MS, metrics: tickingMetrics });
  quiet = await startSubscribeServer((await createTestBroker(redis.url)).broker, { ...options, keepAliveMs: 60_000 });
  publisher = (await createTestBroker(redis.url)).broker;
});
afterEach(closeAllClients);
afterAll(async () => {
  await closeAllClients();
  await stopAll();
  await redis.stop();
});

const PING = JSON.stringify({ type: 'ping', payload: { p: 'x'.repeat(60_000) } });
/** More than loopback's socket buffers hold (about 8 MB here): a server still reading past it is not throttling. */
const UNTHROTTLED = 64 * 1024 * 1024;

interface TcpSocket {
  pause(): void;
  resume(): void;
  readonly bytesWritten: number;
  readonly writableLength: number;
}
const tcp = (socket: WebSocket): TcpSocket => (socket as unknown as { _socket: TcpSocket })._socket;

/**
 * Stops reading, then sends pings as fast as the server takes them until it has taken
 * nothing more for 300 ms. Resolves with how many pings were sent and how many bytes
 * the server's side of the connection took; fails if it took more than
 * {@link UNTHROTTLED}.
 */
async function floodUntilThrottled(raw: RawSocket): Promise<{ pings: number; taken: number }> {
  const socket = tcp(raw.socket);
  socket.pause();
  let pings = 0;
  const taken = (): number => socket.bytesWritten - socket.writableLength;
  let last = -1;
  let since = Date.now();
  for (;;) {
    while (raw.socket.bufferedAmount < 1024 * 1024) {
      raw.send(PING);
      pings++;
    }
    await new Promise((resolve) => setTimeout(resolve, 2));
    const now = taken();
    if (now > UNTHROTTLED) throw new Error(`the server took ${now} bytes and kept reading`);
    if (now !== last) {
      last = now;
      since = Date.now();
    } else if (Date.now() - since >= 300) {
      return { pings, taken: now };
    }
  }
}

async function acknowledged(server: RunningSubscribeServer, user: string): Promise<RawSocket> {
  const socket = await rawSocket(server.wsUrl);
  socket.send({ type: 'connection_init', payload: { authorization: `Bearer ${userToken(user)}` } });
  expect(await socket.nextMessage()).toEqual({ type: 'connection_ack' });
  return socket;
}

describe('before connection_init', () => {
  it('a client that pings and never reads is throttled, then closed with 4413 at the next keepalive tick', async () => {
    // A socket that answers keepalive pings shows when the server ticks.
    const clock = await rawSocket(ticking.wsUrl);
    const nextTick = (): Promise<void> => new Promise((resolve) => clock.socket.once('ping', () => resolve()));
    // Connected just after a tick, so it is judged at the next one, not dropped as silent.
    await nextTick();
    const flooder = await rawSocket(ticking.wsUrl);
    const connectedAt = Date.now();
    const { taken } = await floodUntilThrottled(flooder);
    expect(taken).toBeLessThan(UNTHROTTLED);
    expect(Date.now() - connectedAt, 'the flood was throttled within one tick').toBeLessThan(TICK_MS);

    await nextTick();
    const closed = flooder.closed(TICK_MS);
    tcp(flooder.socket).resume();
    // The bound is the TCP socket's high-water mark where that is larger (Node 22 on).
    const bound = Math.max(UNINITIALISED_BUFFERED_BYTES, new Socket().writableHighWaterMark);
    expect(await closed).toEqual({ code: 4413, reason: `slow consumer: more than ${bound} bytes waiting (before connection_init)` });
  });
});

describe('after connection_init', () => {
  const publishTo = (user: string, text: string) =>
    publisher.publish({
      destination: channels.destination('acme', 'USER', user),
      tenantKey: channels.tenantKey('acme'),
      payload: encodeNotification({ text, timestamp: 1_700_000_000, audience: 'USER', sender: 'test' }),
    });

  it('pongs and notifications share one bound: a throttled client is closed with 4413 by the next notification', async () => {
    const flooder = await acknowledged(quiet, 'frank');
    flooder.send({ id: '1', type: 'subscribe', payload: { query: 'subscription { onNotificationReceived(userName: "frank") { text } }' } });
    await waitFor(() => quiet.server.observers.observerCount(channels.audienceChannel('acme', 'USER', 'frank')) === 1, 'the observer');
    const connectedAt = Date.now();
    const { taken } = await floodUntilThrottled(flooder);
    expect(taken).toBeLessThan(UNTHROTTLED);
    expect(Date.now() - connectedAt, 'the flood was throttled within one tick').toBeLessThan(TICK_MS);

    await publishTo('frank', 'one too many');
    const closed = flooder.closed();
    tcp(flooder.socket).resume();
    expect(await closed).toMatchObject({ code: 4413, reason: expect.stringContaining('MAX_BUFFERED_BYTES') });
  });

  it('a 4413 is counted once: the keepalive tick after it finds the socket closing, not a slow consumer to close again', async () => {
    const clock = await rawSocket(ticking.wsUrl);
    const nextTick = (socket: RawSocket): Promise<void> => new Promise((resolve) => socket.socket.once('ping', () => resolve()));
    const flooder = await acknowledged(ticking, 'ivan');
    flooder.send({ id: '1', type: 'subscribe', payload: { query: 'subscription { onNotificationReceived(userName: "ivan") { text } }' } });
    await waitFor(() => ticking.server.observers.observerCount(channels.audienceChannel('acme', 'USER', 'ivan')) === 1, 'the observer');
    // It answers this tick's ping before it stops reading: the next tick counts it alive.
    await nextTick(flooder);
    const before = tickingMetrics.counts.slowConsumerCloses;
    await floodUntilThrottled(flooder);
    await publishTo('ivan', 'one too many');
    await waitFor(() => tickingMetrics.counts.slowConsumerCloses > before, 'the 4413');
    // The heartbeat judges every socket in the turn it pings them: the clock's ping comes after the flooder was judged.
    await nextTick(clock);
    expect(tickingMetrics.counts.slowConsumerCloses - before).toBe(1);
    const closed = flooder.closed();
    tcp(flooder.socket).resume();
    expect(await closed).toMatchObject({ code: 4413 });
  });

  it('a throttled client that reads again gets a pong for every ping and is served again', async () => {
    const flooder = await acknowledged(quiet, 'grace');
    const { pings, taken } = await floodUntilThrottled(flooder);
    expect(taken).toBeLessThan(UNTHROTTLED);

    tcp(flooder.socket).resume();
    for (let n = 0; n < pings; n++) expect(await flooder.nextMessage()).toMatchObject({ type: 'pong' });
    flooder.send({ type: 'ping', payload: { last: true } });
    expect(await flooder.nextMessage()).toEqual({ type: 'pong', payload: { last: true } });
  });
});

describe('binary frames', () => {
  it('are refused with 4400, even holding a valid message', async () => {
    const socket = await rawSocket(quiet.wsUrl);
    socket.socket.send(Buffer.from(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${userToken('hal')}` } })), {
      binary: true,
    });
    expect(await socket.nextMessage()).toEqual({ closed: { code: 4400, reason: expect.stringContaining('text frames only') } });
  });
});
