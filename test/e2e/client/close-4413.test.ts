/**
 * @herald/client and a real Herald's 4413. The server closes a WebSocket whose client does
 * not read once more than `MAX_BUFFERED_BYTES` waits to be sent to it
 * (src/transports/websocket/socket-sink.ts). Here the client's `ws` socket is paused by a
 * wrapper (`WebSocket.pause()`: the TCP socket is not read), the server's bound is set to
 * its floor (1 KiB) and ~10 MB of notifications are sent with `sendMany` — enough to fill
 * the kernel's buffers on both ends (4 MiB send buffer at most here, and the receiver's
 * window, which does not grow while nothing is read) so that bytes wait in Herald's process.
 * The server counts the 4413 (`herald_slow_consumer_closes_total`); then the socket reads
 * again: the client reads what was already sent, sees the close 4413, resumes with `since`
 * (packages/client/src/close-policy.ts: 4413 resumes) and gets the rest from history — which
 * holds all of them (`HISTORY_MAX_LENGTH` 1000), so no gap is told (docs/client.md,
 * docs/delivery-guarantee.md "A slow reader loses nothing"): every notification exactly
 * once, in order, and a marker sent last closes the window for anything repeated.
 *
 * The client pings 10 s after each pong and terminates 5 s after an unanswered ping: the
 * socket is paused right after a pong, so a pause shorter than 15 s cannot be ended by
 * the client itself (were it, the close would be 4499, not 4413, and the test fails).
 */
import WebSocket from 'ws';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createHeraldClient, createHeraldPublisher, type HeraldClient, type SendInput } from '../../../packages/client/src/index.js';
import { PATIENCE_MS } from '../../support/patience.js';
import { startHeraldProcess, stopAllProcesses } from '../../support/process.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';
import { serviceToken, userToken } from '../../support/tokens.js';
import { createWaiters } from '../../support/waiters.js';

const USER = 'slow-reader';
/** Characters per big notification (`MAX_TEXT_LENGTH` raised to it). */
const BIG_TEXT = 1_000_000;
/** Big notifications sent while the socket is paused: ~10 MB, over the kernel's buffers. */
const BIG_COUNT = 10;
/** The server's send bound, its floor. */
const MAX_BUFFERED_BYTES = 1024;
/** The client's keep-alive (connection.ts: a ping 10 s after each pong, terminated 5 s later). */
const PAUSE_BUDGET_MS = 15_000;

let redis: RedisServer;
let subscribePort: number;
let publishUrl: string;
let metricsUrl: string;
let client: HeraldClient | undefined;
const waiters = createWaiters();
/** Each socket the client opened: the socket, the pongs it received, how it closed. */
const sockets: { socket: PausableWebSocket; pongs: number; closed?: { code: number; reason: string } }[] = [];

/** `ws`, recording every socket and the pongs it receives, so a test can `pause()` one. */
class PausableWebSocket extends WebSocket {
  constructor(url: string, protocols?: string | string[]) {
    super(url, protocols);
    const record: (typeof sockets)[number] = { socket: this, pongs: 0 };
    sockets.push(record);
    this.on('message', (data: Buffer, isBinary: boolean) => {
      // A big `next` frame is not parsed: only short messages can be a `pong`.
      if (!isBinary && data.length < 100 && data.toString().includes('"pong"')) record.pongs += 1;
      waiters.wake();
    });
    this.on('close', (code: number, reason: Buffer) => {
      record.closed = { code, reason: reason.toString() };
      waiters.wake();
    });
  }
}

beforeAll(async () => {
  redis = await startRedisServer();
  const herald = await startHeraldProcess('all', {
    env: {
      REDIS_URL: redis.url,
      METRICS_PORT: '0',
      MAX_BUFFERED_BYTES: String(MAX_BUFFERED_BYTES),
      MAX_TEXT_LENGTH: String(BIG_TEXT),
      MAX_BATCH_BYTES: String(64 * 1024 * 1024),
    },
  });
  subscribePort = herald.subscribePort ?? 0;
  publishUrl = `http://127.0.0.1:${herald.publishPort}/graphql`;
  metricsUrl = `http://127.0.0.1:${herald.metricsPort}/metrics`;
});

afterAll(async () => {
  client?.close();
  await stopAllProcesses();
  await redis?.stop();
});

/** `herald_slow_consumer_closes_total`, scraped. */
async function slowConsumerCloses(): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  const line = text.split('\n').find((candidate) => candidate.startsWith('herald_slow_consumer_closes_total'));
  return line === undefined ? Number.NaN : Number(line.slice(line.lastIndexOf(' ') + 1));
}

it('4413 from the real server to a client that stopped reading: it resumes after its position and gets every notification once, in order', { timeout: 120_000 }, async () => {
  const delivered: string[] = [];
  const gaps: string[] = [];
  const errors: string[] = [];
  client = createHeraldClient({ url: `ws://127.0.0.1:${subscribePort}/graphql`, token: () => userToken(USER), webSocketImpl: PausableWebSocket });
  client.onNotification((notification) => {
    delivered.push(notification.id);
    waiters.wake();
  });
  client.onGap((gap) => gaps.push(gap.reason));
  client.onError((error) => errors.push(error.code));
  client.onStatus(() => waiters.wake());
  const live = client;
  await waiters.until(() => live.status === 'live' || undefined, 'the client live', PATIENCE_MS);
  expect(await slowConsumerCloses()).toBe(0);

  const publisher = createHeraldPublisher({ url: publishUrl, token: serviceToken(), attemptTimeoutMs: PATIENCE_MS });
  const sent: string[] = [];
  for (const text of ['before 1', 'before 2']) sent.push((await publisher.send({ to: USER, text, push: 'NEVER' })).id);
  await waiters.until(() => delivered.length === 2 || undefined, 'the 2 sent while reading', PATIENCE_MS, () => `${delivered.length}`);
  expect(delivered).toEqual(sent);

  // Right after a pong: the client's next ping is 10 s away.
  const first = sockets[0];
  if (first === undefined) throw new Error('no socket');
  await waiters.until(() => first.pongs >= 1 || undefined, 'a pong on the first socket', PATIENCE_MS);
  first.socket.pause();
  const pausedAt = Date.now();

  const big: SendInput[] = Array.from({ length: BIG_COUNT }, (_, n) => ({ to: USER, text: `${n}`.padEnd(BIG_TEXT, '.'), push: 'NEVER' }));
  sent.push(...(await publisher.sendMany(big)).map((result) => result.id));
  // A delivery is judged on its turn's first frame: should all the big ones have been
  // written in one turn, the next one finds the bytes waiting. Small ones until it does.
  let closes = await slowConsumerCloses();
  for (let n = 0; closes === 0 && Date.now() - pausedAt < PATIENCE_MS; n++) {
    sent.push((await publisher.send({ to: USER, text: `nudge ${n}`, push: 'NEVER' })).id);
    closes = await slowConsumerCloses();
  }
  expect(closes).toBe(1);
  const pausedFor = Date.now() - pausedAt;
  expect(pausedFor).toBeLessThan(PAUSE_BUDGET_MS);
  expect(first.closed).toBeUndefined();
  first.socket.resume();

  const closed = await waiters.until(() => first.closed, 'the first socket closed', PATIENCE_MS);
  expect(closed.code).toBe(4413);
  expect(closed.reason).toMatch(/slow consumer/);
  await waiters.until(() => (sockets.length >= 2 && live.status === 'live') || undefined, 'live on a second socket', PATIENCE_MS);
  for (const text of ['after 1', 'after 2']) sent.push((await publisher.send({ to: USER, text, push: 'NEVER' })).id);
  await waiters.until(() => delivered.length >= sent.length || undefined, 'every notification', PATIENCE_MS, () => `${delivered.length} of ${sent.length}`);
  // A marker sent last: anything repeated on the resumed subscription would come before it.
  const marker = (await publisher.send({ to: USER, text: 'marker', push: 'NEVER' })).id;
  await waiters.until(() => delivered.includes(marker) || undefined, 'the marker', PATIENCE_MS);
  expect(delivered).toEqual([...sent, marker]);
  expect(gaps).toEqual([]);
  expect(errors).toEqual([]);
  expect(sockets.map((socket) => socket.closed?.code)).toEqual([4413, undefined]);
  // The second socket was never too slow.
  expect(await slowConsumerCloses()).toBe(1);
});
