/**
 * SIGTERM right after live deliveries: the seen-live marks of everything a subscriber
 * received are in Redis once the process has exited, though marks wait up to 100 ms to
 * be written together (`src/push/seen-live.ts`). A real process, real Redis, the real
 * graphql-ws client.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPushKeys } from '../../../src/push/keys.js';
import { postGraphQL } from '../../support/http.js';
import { eventually } from '../../support/push-worker.js';
import { exitWithin, startHeraldProcess, stopAllProcesses } from '../../support/process.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';
import { serviceToken, userToken } from '../../support/tokens.js';
import { closeAllClients, collect, wsClient } from '../../support/ws.js';

const BATCH = 'mutation Batch($notifications: [NotificationInput!]!) { sendNotifications(notifications: $notifications) { id } }';
const keys = createPushKeys('herald');

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedisServer();
});
afterAll(async () => {
  await closeAllClients();
  await stopAllProcesses();
  await redis.stop();
});

describe('seen-live marks at shutdown', () => {
  it('are all written before the process exits, the last ones within their batch window', async () => {
    // A long grace window: marks wait their full 100 ms window, so the last ones are still
    // waiting when the signal comes.
    const herald = await startHeraldProcess('all', { env: { REDIS_URL: redis.url, PUSH_OFFLINE_GRACE_MS: '600000', SHUTDOWN_DRAIN_MS: '400' } });
    const publishUrl = `http://127.0.0.1:${herald.publishPort ?? 0}/graphql`;
    const live = collect(
      wsClient(`ws://127.0.0.1:${herald.subscribePort ?? 0}/graphql`, { token: userToken('bob', { tenant: 'acme' }) }),
      'subscription { onNotificationReceived(userName: "bob") { id } }',
    );
    const service = serviceToken({ tenant: 'acme' });
    await eventually(async () => {
      await postGraphQL(publishUrl, BATCH, { token: service, variables: { notifications: [{ to: 'bob', text: 'open?', push: 'NEVER' }] } });
      return live.results.length > 0;
    }, "bob's subscription to open");

    const sent = await postGraphQL(publishUrl, BATCH, {
      token: service,
      variables: { notifications: Array.from({ length: 200 }, (_, n) => ({ to: 'bob', text: `n${n}` })) },
    });
    const ids = (sent.body.data?.['sendNotifications'] as Array<{ id: string }>).map((notification) => notification.id);
    expect(ids).toHaveLength(200);
    const received = (): Set<string> => new Set(live.results.map((result) => (result.data?.['onNotificationReceived'] as { id: string }).id));
    await eventually(() => ids.every((id) => received().has(id)), 'bob to receive all 200 live');

    process.kill(herald.pid, 'SIGTERM');
    expect(await exitWithin(herald.exited, 10_000)).toBe(0);

    const client = redis.client();
    const marked = await client.exists(...ids.map((id) => keys.seenLive('acme', id, 'bob')));
    expect(marked).toBe(200);
    // Only what bob received is marked: nobody else is.
    expect(await client.exists(keys.seenLive('acme', ids[0] ?? '', 'carol'))).toBe(0);
  });
});
