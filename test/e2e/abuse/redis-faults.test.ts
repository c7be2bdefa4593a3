/**
 * The network between Herald and Redis failing the ordinary ways, through a TCP fault
 * proxy (test/support/fault-proxy.ts), with the compiled servers as the image runs them,
 * a real redis-server, the real graphql-ws client and notifications published all along:
 *
 * - silent (the connections accept bytes and forward none, and never close): both
 *   servers replace every connection within 10 s (`REDIS_COMMAND_TIMEOUT_MS` 2 s and a
 *   1 s PING: about 3 s), `/readyz` follows, and the live subscriber gets every
 *   acknowledged notification, in order, once, with the text it was sent with;
 * - dropped bytes for 10 s, then forwarding again: the same, and no reply is taken for
 *   another command's (each acknowledged id carries its own text);
 * - dropped bytes for less than the command timeout: the replies that follow belong to
 *   later commands, and the publish script's receipt tells (`redis.ts`);
 * - latency under the command timeout: nothing is replaced;
 * - cut: the same as silent, at once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeAllFaultProxies, startFaultProxy, type FaultProxy } from '../../support/fault-proxy.js';
import { waitFor } from '../../support/herald.js';
import { errorCode, postGraphQL } from '../../support/http.js';
import { startHeraldProcess, stopAllProcesses, type HeraldProcess } from '../../support/process.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';
import { serviceToken, userToken } from '../../support/tokens.js';
import { closeAllClients, collect, wsClient, type Collected } from '../../support/ws.js';

const SUBSCRIPTION = `subscription On($userName: String!) { onNotificationReceived(userName: $userName) { id text } }`;
const SEND_ID = `mutation Send($text: String!) { sendNotification(to: "alice", text: $text) { id } }`;
/** The bound the issue states for replacing a silent connection with the defaults. */
const REPLACED_WITHIN_MS = 10_000;

let redis: RedisServer;
let proxy: FaultProxy;
let subscribe: HeraldProcess;
let publish: HeraldProcess;
let alice: Collected;
let sent = 0;

interface Outcome {
  readonly text: string;
  readonly startedAt: number;
  readonly id?: string;
  readonly code?: string;
}

const readyz = async (port: number | undefined): Promise<number> => (await fetch(`http://127.0.0.1:${port}/readyz`)).status;
const bothReady = async (): Promise<boolean> => (await readyz(subscribe.subscribePort)) === 200 && (await readyz(publish.publishPort)) === 200;

async function publishOne(): Promise<Outcome> {
  const text = `n${++sent}`;
  const startedAt = Date.now();
  const response = await postGraphQL(`http://127.0.0.1:${publish.publishPort}/graphql`, SEND_ID, { token: serviceToken(), variables: { text } });
  const id = (response.body.data?.['sendNotification'] as { id?: string } | null | undefined)?.id;
  return id === undefined ? { text, startedAt, code: errorCode(response) ?? `HTTP ${response.status}` } : { text, startedAt, id };
}

/** Publishes one notification every 50 ms, without waiting for the answers, until `stop()`. */
function publishAlong(): { stop(): Promise<Outcome[]> } {
  const outcomes: Array<Promise<Outcome>> = [];
  const timer = setInterval(() => outcomes.push(publishOne()), 50);
  return {
    async stop() {
      clearInterval(timer);
      return Promise.all(outcomes);
    },
  };
}

/** What alice has received: id → text, in arrival order. */
const received = (): Array<{ id: string; text: string }> =>
  alice.results.map((result) => result.data?.['onNotificationReceived'] as { id: string; text: string });

/** Every acknowledged notification reached alice once, with its own text, in publish order. */
async function expectAllAcknowledgedDelivered(outcomes: readonly Outcome[]): Promise<void> {
  const acknowledged = outcomes.filter((outcome) => outcome.id !== undefined);
  const ids = new Set(acknowledged.map((outcome) => outcome.id));
  await waitFor(() => received().filter((notification) => ids.has(notification.id)).length >= ids.size, `alice to receive ${ids.size} acknowledged notifications`, 15_000);
  const byId = new Map(received().map((notification) => [notification.id, notification.text]));
  for (const outcome of acknowledged) expect(byId.get(outcome.id ?? ''), `the text of ${outcome.id}`).toBe(outcome.text);
  const arrived = received().map((notification) => notification.id);
  expect(new Set(arrived).size, 'no notification twice').toBe(arrived.length);
  const sequence = (id: string): number => Number(id.split('-')[1]);
  expect(arrived.map(sequence), 'in publish order').toEqual([...arrived.map(sequence)].sort((a, b) => a - b));
  expect(alice.error, 'the subscription is still open').toBeUndefined();
  expect(alice.completed).toBe(false);
}

/** Runs `fault`, publishing all along; resolves with the outcomes and when both servers were connected and ready again. */
async function throughFault(fault: () => Promise<void>, newConnections: number): Promise<{ outcomes: Outcome[]; recoveredMs: number; faultAt: number }> {
  const publishing = publishAlong();
  await new Promise((resolve) => setTimeout(resolve, 300));
  const before = proxy.accepted;
  const faultAt = Date.now();
  await fault();
  await waitFor(async () => proxy.accepted >= before + newConnections && (await bothReady()), 'both servers to connect again and be ready', 30_000);
  const recoveredMs = Date.now() - faultAt;
  // Published after the recovery: these must all be acknowledged.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  return { outcomes: await publishing.stop(), recoveredMs, faultAt };
}

beforeAll(async () => {
  redis = await startRedisServer();
  proxy = await startFaultProxy(redis.port);
  const env = { REDIS_URL: `redis://127.0.0.1:${proxy.port}` };
  [subscribe, publish] = await Promise.all([startHeraldProcess('subscribe', { env, entry: 'dist' }), startHeraldProcess('publish', { env, entry: 'dist' })]);
  alice = collect(wsClient(`ws://127.0.0.1:${subscribe.subscribePort}/graphql`, { token: userToken('alice') }), SUBSCRIPTION, { userName: 'alice' });
  await waitFor(async () => (await redis.numsub('herald:{acme}:user:alice')) === 1, 'the subscription');
  expect((await publishOne()).id).toBeDefined();
  await alice.nth(0);
});
afterAll(async () => {
  await closeAllClients();
  await stopAllProcesses();
  await closeAllFaultProxies();
  await redis.stop();
});

describe('Redis connections through a faulty network', () => {
  it('silent: every connection is replaced within 10 s, readiness follows, nothing acknowledged is lost', async () => {
    // Two connections per server: the subscriber and the command connection.
    const { outcomes, recoveredMs } = await throughFault(async () => proxy.fault({ kind: 'silent' }), 4);
    expect(recoveredMs).toBeLessThanOrEqual(REPLACED_WITHIN_MS);
    const lastFailure = Math.max(0, ...outcomes.filter((outcome) => outcome.id === undefined).map((outcome) => outcome.startedAt));
    // Failures say what they mean: maybe done, or not done; never an internal error.
    for (const outcome of outcomes) if (outcome.code !== undefined) expect(['OUTCOME_UNKNOWN', 'SERVICE_UNAVAILABLE']).toContain(outcome.code);
    expect(outcomes.some((outcome) => outcome.code !== undefined), 'the fault was felt').toBe(true);
    expect(outcomes.filter((outcome) => outcome.startedAt > lastFailure).length, 'publishes succeed again').toBeGreaterThan(5);
    await expectAllAcknowledgedDelivered(outcomes);
  });

  it('dropped bytes for 10 s, then forwarded again: replaced, in step, nothing acknowledged lost or mislabelled', async () => {
    const { outcomes } = await throughFault(async () => {
      proxy.fault({ kind: 'drop' });
      await new Promise((resolve) => setTimeout(resolve, 10_000));
      proxy.forward();
    }, 4);
    for (const outcome of outcomes) if (outcome.code !== undefined) expect(['OUTCOME_UNKNOWN', 'SERVICE_UNAVAILABLE']).toContain(outcome.code);
    const afterward = outcomes.filter((outcome) => outcome.startedAt > Date.now() - 1000);
    expect(afterward.length).toBeGreaterThan(5);
    for (const outcome of afterward) expect(outcome.code, `${outcome.text} after the network came back`).toBeUndefined();
    await expectAllAcknowledgedDelivered(outcomes);
  }, 60_000);

  it('dropped bytes for less than the command timeout: no reply is taken for a lost command', async () => {
    const publishing = publishAlong();
    await new Promise((resolve) => setTimeout(resolve, 300));
    proxy.fault({ kind: 'drop' });
    await new Promise((resolve) => setTimeout(resolve, 400));
    proxy.forward();
    await waitFor(bothReady, 'both servers to be ready', 30_000);
    await new Promise((resolve) => setTimeout(resolve, 4000));
    const outcomes = await publishing.stop();
    expect(outcomes.some((outcome) => outcome.code === 'OUTCOME_UNKNOWN'), 'the lost publishes are not acknowledged').toBe(true);
    await expectAllAcknowledgedDelivered(outcomes);
  }, 60_000);

  it('latency below the command timeout replaces nothing', async () => {
    const before = proxy.accepted;
    proxy.fault({ kind: 'latency', ms: 300 });
    const publishing = publishAlong();
    await new Promise((resolve) => setTimeout(resolve, 4000));
    const outcomes = await publishing.stop();
    proxy.forward();
    expect(proxy.accepted, 'no connection was replaced').toBe(before);
    for (const outcome of outcomes) expect(outcome.code, outcome.text).toBeUndefined();
    await expectAllAcknowledgedDelivered(outcomes);
  });

  it('cut: connected again and filled', async () => {
    const { outcomes, recoveredMs } = await throughFault(async () => proxy.fault({ kind: 'cut' }), 4);
    expect(recoveredMs).toBeLessThanOrEqual(REPLACED_WITHIN_MS);
    await expectAllAcknowledgedDelivered(outcomes);
  });
});
