/**
 * The per-notification ledger end to end: Herald started as `main.ts` starts it (the
 * all-in-one mode on a real Redis), a user with a live WebSocket and a live SSE
 * subscription, notifications sent through the publish server, `delivery(id)` read by
 * the tenant's service on the publish server and by users on the subscribe server, the
 * read position moved, and the ledger turned off (`LEDGER_MAX_EVENTS=0`: no key written).
 * The push worker's events are written here as the worker writes them (a batched writer
 * on the same keys): the worker's own recording is tested with the worker.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readConfig } from '../../src/config/index.js';
import { createLedgerKeys } from '../../src/ledger/keys.js';
import { createRedisLedger } from '../../src/ledger/redis-ledger.js';
import { startHerald, type RunningHerald } from '../../src/servers/herald.js';
import { errorCode, postGraphQL, readEvents, sendFull } from '../support/http.js';
import { quietLogger } from '../support/herald.js';
import { eventually } from '../support/push-worker.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import { serviceToken, TEST_SECRET, userToken } from '../support/tokens.js';
import { closeAllClients, collect, wsClient } from '../support/ws.js';

const DELIVERY = `query Delivery($id: ID!) { delivery(id: $id) {
  id eventsDropped
  accepted { publisher audience to push }
  live { subscriptions servers byTransport { websocket sse grpc } }
  devices { user device kind status attempts lastReason lastDetail }
  readBy { user }
  events { kind user device users }
} }`;

interface Delivery {
  id: string;
  eventsDropped: number;
  accepted: { publisher: string; audience: string; to: string; push: string } | null;
  live: { subscriptions: number; servers: number; byTransport: { websocket: number; sse: number; grpc: number } };
  devices: Array<{ user: string; device: string; kind: string | null; status: string; attempts: number; lastReason: string | null; lastDetail: string | null }>;
  readBy: Array<{ user: string }>;
  events: Array<{ kind: string; user: string | null; device: string | null; users: string[] | null }>;
}

const MARK_READ = `mutation Mark($userName: String!, $upTo: ID!) { markNotificationsRead(userName: $userName, upTo: $upTo) { readUpTo } }`;
const ON_NOTIFICATION = 'subscription On($userName: String!) { onNotificationReceived(userName: $userName) { id text } }';

let redis: RedisServer;
const started: RunningHerald[] = [];

function configFor(extra: Record<string, string> = {}) {
  return readConfig({
    REDIS_URL: redis.url,
    JWT_SECRET: TEST_SECRET,
    HOST: '127.0.0.1',
    SUBSCRIBE_PORT: '0',
    PUBLISH_PORT: '0',
    GRPC_PORT: '0',
    PUBLISH_GRPC_PORT: '0',
    ...extra,
  });
}

async function start(extra: Record<string, string> = {}): Promise<{ herald: RunningHerald; subscribeUrl: string; wsUrl: string; publishUrl: string }> {
  const herald = await startHerald(configFor(extra), 'all', quietLogger);
  started.push(herald);
  return {
    herald,
    subscribeUrl: `http://127.0.0.1:${herald.subscribePort}/graphql`,
    wsUrl: `ws://127.0.0.1:${herald.subscribePort}/graphql`,
    publishUrl: `http://127.0.0.1:${herald.publishPort}/graphql`,
  };
}

/** `delivery(id)` as `token` reads it at `url`: the value, or throws with the errors. */
async function delivery(url: string, token: string, id: string): Promise<Delivery | null> {
  const response = await postGraphQL(url, DELIVERY, { token, variables: { id } });
  if (response.body.errors) throw new Error(`delivery: ${JSON.stringify(response.body.errors)}`);
  return (response.body.data?.['delivery'] ?? null) as Delivery | null;
}

/**
 * Opens a WebSocket and an SSE subscription of `user` and resolves once both take
 * notifications (a probe reaches 2 subscriptions), with a function that stops the SSE one.
 */
async function subscribeTwice(urls: { wsUrl: string; subscribeUrl: string; publishUrl: string }, user: string): Promise<() => void> {
  collect(wsClient(urls.wsUrl, { token: userToken(user) }), ON_NOTIFICATION, { userName: user });
  const abort = new AbortController();
  const query = encodeURIComponent(`subscription { onNotificationReceived(userName: "${user}") { id } }`);
  const response = await fetch(`${urls.subscribeUrl}?query=${query}`, { headers: { Accept: 'text/event-stream', Authorization: `Bearer ${userToken(user)}` }, signal: abort.signal });
  readEvents(response);
  await eventually(async () => (await sendFull(urls.publishUrl, serviceToken(), { to: user, text: 'probe' })).receivedUsers === 2, `both of ${user}'s subscriptions`);
  return () => abort.abort();
}

beforeAll(async () => {
  redis = await startRedisServer();
});
afterAll(async () => {
  await closeAllClients();
  await Promise.all(started.map((herald) => herald.stop()));
  await redis?.stop();
});

describe('the ledger on (LEDGER_MAX_EVENTS default)', () => {
  let urls: Awaited<ReturnType<typeof start>>;
  let stopSse: () => void;
  let id: string;
  beforeAll(async () => {
    urls = await start();
    stopSse = await subscribeTwice(urls, 'dora');
    const sent = await sendFull(urls.publishUrl, serviceToken(), { to: 'dora', text: 'your order shipped' });
    expect(sent.receivedUsers).toBe(2);
    id = sent.id;
  });
  afterAll(() => stopSse());

  it('shows accepted, and live 2 — one WebSocket, one SSE — to the tenant\'s service', async () => {
    await eventually(async () => ((await delivery(urls.publishUrl, serviceToken(), id))?.live.subscriptions ?? 0) > 0, 'the live event');
    const shown = await delivery(urls.publishUrl, serviceToken(), id);
    expect(shown).toMatchObject({
      id,
      eventsDropped: 0,
      accepted: { publisher: 'billing', audience: 'USER', to: 'dora', push: 'WHEN_OFFLINE' },
      live: { subscriptions: 2, servers: 1, byTransport: { websocket: 1, sse: 1, grpc: 0 } },
      devices: [],
      readBy: [],
    });
    expect(shown?.events.map((event) => event.kind)).toEqual(['ACCEPTED', 'DELIVERED_LIVE']);
    expect(shown?.events[1]?.users).toEqual(['dora']);
    // The timeline is the tenant's: its key carries the tenant's hash tag.
    expect(await redis.client().exists(`herald:{acme}:ledger:${id}`)).toBe(1);
    // Kept for LEDGER_MAX_AGE_SECONDS (a day by default), not history's week.
    const ttl = await redis.client().pttl(`herald:{acme}:ledger:${id}`);
    expect(ttl).toBeGreaterThan(24 * 3600 * 1000 - 60_000);
    expect(ttl).toBeLessThanOrEqual(24 * 3600 * 1000);
  });

  it("records a read event when the user's read position passes it", async () => {
    const marked = await postGraphQL(urls.subscribeUrl, MARK_READ, { token: userToken('dora'), variables: { userName: 'dora', upTo: id } });
    expect(marked.body.errors).toBeUndefined();
    await eventually(async () => ((await delivery(urls.publishUrl, serviceToken(), id))?.readBy.length ?? 0) > 0, 'the read event');
    const shown = await delivery(urls.publishUrl, serviceToken(), id);
    expect(shown?.readBy).toEqual([{ user: 'dora' }]);
    expect(shown?.events.map((event) => event.kind)).toEqual(['ACCEPTED', 'DELIVERED_LIVE', 'READ']);
    // Marking the same position again passes nothing new: no second read event.
    await postGraphQL(urls.subscribeUrl, MARK_READ, { token: userToken('dora'), variables: { userName: 'dora', upTo: id } });
    const other = await sendFull(urls.publishUrl, serviceToken(), { to: 'dora', text: 'a marker' });
    await postGraphQL(urls.subscribeUrl, MARK_READ, { token: userToken('dora'), variables: { userName: 'dora', upTo: other.id } });
    await eventually(async () => ((await delivery(urls.publishUrl, serviceToken(), other.id))?.readBy.length ?? 0) > 0, 'the later read event');
    expect((await delivery(urls.publishUrl, serviceToken(), id))?.events.filter((event) => event.kind === 'READ')).toHaveLength(1);
  });

  it('shows a user only their own part, on the subscribe server', async () => {
    // Two users' pushes, written as the push worker writes them.
    const worker = createRedisLedger({ redis: redis.client(), keys: createLedgerKeys('herald'), maxEvents: 200, batchMs: 0 });
    worker.record('acme', id, { type: 'push', at: Date.now(), status: 'failed', user: 'dora', device: 'dev-dora', kind: 'WEBHOOK', attempt: 1, reason: 'timeout', detail: 'no answer' });
    worker.record('acme', id, { type: 'push', at: Date.now(), status: 'accepted', user: 'erin', device: 'dev-erin', kind: 'FCM', attempt: 1 });
    await worker.flush();

    const all = await delivery(urls.publishUrl, serviceToken(), id);
    expect(all?.devices.map((device) => device.user)).toEqual(['dora', 'erin']);

    const dora = await delivery(urls.subscribeUrl, userToken('dora'), id);
    expect(dora?.accepted?.to).toBe('dora');
    expect(dora?.live.subscriptions).toBe(2);
    expect(dora?.devices).toEqual([{ user: 'dora', device: 'dev-dora', kind: 'WEBHOOK', status: 'FAILED', attempts: 1, lastReason: 'TIMEOUT', lastDetail: 'no answer' }]);
    expect(dora?.events.every((event) => event.user === null || event.user === 'dora')).toBe(true);

    // Erin is named by her push only: she sees it, and no live delivery of Dora's.
    const erin = await delivery(urls.subscribeUrl, userToken('erin'), id);
    expect(erin?.devices.map((device) => device.device)).toEqual(['dev-erin']);
    expect(erin?.live.subscriptions).toBe(0);
    expect(erin?.readBy).toEqual([]);

    // Nothing of it concerns Frank.
    expect(await delivery(urls.subscribeUrl, userToken('frank'), id)).toBeNull();
  });

  it("answers another tenant's service null, never its data", async () => {
    expect(await delivery(urls.publishUrl, serviceToken({ tenant: 'globex' }), id)).toBeNull();
    expect(await delivery(urls.subscribeUrl, userToken('dora', { tenant: 'globex' }), id)).toBeNull();
  });

  it('refuses a bad id (BAD_USER_INPUT), a user token on the publish server (FORBIDDEN), and answers an unknown id null', async () => {
    const bad = await postGraphQL(urls.publishUrl, DELIVERY, { token: serviceToken(), variables: { id: 'no:such:id' } });
    expect(errorCode(bad)).toBe('BAD_USER_INPUT');
    expect(bad.body.errors?.[0]?.message).toMatch(/\bid\b/);
    const user = await postGraphQL(urls.publishUrl, DELIVERY, { token: userToken('dora'), variables: { id } });
    expect(errorCode(user)).toBe('FORBIDDEN');
    expect(await delivery(urls.publishUrl, serviceToken(), `${id.split('_')[0]}_1-1`)).toBeNull();
  });

  it('records nothing for a repeated idempotency key', async () => {
    const first = await sendFull(urls.publishUrl, serviceToken(), { to: 'nobody', text: 'once', idempotencyKey: 'ledger-once' });
    const again = await sendFull(urls.publishUrl, serviceToken(), { to: 'nobody', text: 'once', idempotencyKey: 'ledger-once' });
    expect(again).toMatchObject({ id: first.id, duplicate: true });
    expect(await redis.client().lrange(`herald:{acme}:ledger:${first.id}`, 0, -1)).toHaveLength(1);
  });
});

describe('the ledger off (LEDGER_MAX_EVENTS=0)', () => {
  it('writes no ledger key: not on publish, live delivery, nor read', async () => {
    const off = await start({ LEDGER_MAX_EVENTS: '0', CHANNEL_PREFIX: 'off' });
    const stopSse = await subscribeTwice(off, 'gus');
    const sent = await sendFull(off.publishUrl, serviceToken(), { to: 'gus', text: 'quiet' });
    expect(sent.receivedUsers).toBe(2);
    await postGraphQL(off.subscribeUrl, MARK_READ, { token: userToken('gus'), variables: { userName: 'gus', upTo: sent.id } });
    expect(await delivery(off.publishUrl, serviceToken(), sent.id)).toBeNull();
    stopSse();
    await closeAllClients();
    // Stopping flushes whatever a writer still held.
    await off.herald.stop();
    started.splice(started.indexOf(off.herald), 1);
    expect(await redis.client().keys('off:*ledger*')).toEqual([]);
    // The same Redis holds the other Herald's ledgers: the pattern finds them where they are.
    expect((await redis.client().keys('herald:*ledger*')).length).toBeGreaterThan(0);
  });
});
