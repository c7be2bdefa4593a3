/**
 * A Redis that is frozen (SIGSTOP: connected, silent) rather than gone. Real processes,
 * real Redis:
 * - a publish whose script was sent but not answered is reported as `OUTCOME_UNKNOWN`
 *   (it may have happened — and here it did), never as "not sent", and within about one
 *   `REDIS_COMMAND_TIMEOUT_MS`;
 * - `/readyz` turns 503 while Redis does not answer, and 200 again when it does;
 * - a SUBSCRIBE that timed out is undone once Redis resumes, so no channel stays
 *   subscribed that no client holds.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../support/herald.js';
import { errorCode, postGraphQL, SEND } from '../../support/http.js';
import { startHeraldProcess, stopAllProcesses, type HeraldProcess } from '../../support/process.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';
import { serviceToken, userToken } from '../../support/tokens.js';
import { closeAllClients, collect, ON_NOTIFICATION, wsClient } from '../../support/ws.js';

const TIMEOUT_MS = 600;
let redis: RedisServer;
let subscribe: HeraldProcess;
let publish: HeraldProcess;
let frozen = false;

const freeze = (): void => {
  process.kill(redis.pid, 'SIGSTOP');
  frozen = true;
};
const thaw = (): void => {
  if (frozen) process.kill(redis.pid, 'SIGCONT');
  frozen = false;
};
const readyz = async (port: number | undefined): Promise<number> => (await fetch(`http://127.0.0.1:${port}/readyz`)).status;

beforeAll(async () => {
  redis = await startRedisServer();
  const env = { REDIS_URL: redis.url, REDIS_COMMAND_TIMEOUT_MS: String(TIMEOUT_MS) };
  [subscribe, publish] = await Promise.all([startHeraldProcess('subscribe', { env }), startHeraldProcess('publish', { env })]);
});
afterAll(async () => {
  thaw();
  await closeAllClients();
  await stopAllProcesses();
  await redis.stop();
});

describe('Redis frozen', () => {
  it('a publish it did not answer is OUTCOME_UNKNOWN, readiness follows, and the notification was in fact sent', async () => {
    const alice = collect(wsClient(`ws://127.0.0.1:${subscribe.subscribePort}/graphql`, { token: userToken('alice') }), ON_NOTIFICATION, {
      userName: 'alice',
    });
    await waitFor(async () => (await redis.numsub('herald:{acme}:user:alice')) === 1, 'the subscription');
    // Loads the publish script, so the frozen Redis holds an EVALSHA it will run, not a NOSCRIPT.
    const warmUp = await postGraphQL(`http://127.0.0.1:${publish.publishPort}/graphql`, SEND, { token: serviceToken(), variables: { to: 'alice', text: 'warm-up' } });
    expect(warmUp.body.errors).toBeUndefined();

    freeze();
    try {
      const started = Date.now();
      const response = await postGraphQL(`http://127.0.0.1:${publish.publishPort}/graphql`, `mutation { sendNotification(to: "alice", text: "maybe") { id } }`, {
        token: serviceToken(),
      });
      const took = Date.now() - started;
      expect(errorCode(response)).toBe('OUTCOME_UNKNOWN');
      expect(response.body.errors?.[0]?.message).toMatch(/may or may not have been carried out.*idempotencyKey/);
      expect(took).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
      // About one timeout; a loaded machine adds to it, a second attempt would double it and more.
      expect(took).toBeLessThan(TIMEOUT_MS * 4);

      await waitFor(async () => (await readyz(publish.publishPort)) === 503 && (await readyz(subscribe.subscribePort)) === 503, 'both to be not ready', 5000);
    } finally {
      thaw();
    }
    await waitFor(async () => (await readyz(publish.publishPort)) === 200 && (await readyz(subscribe.subscribePort)) === 200, 'both to be ready again', 5000);
    // Redis ran the script once it resumed: the "unknown" notification was delivered.
    expect((await alice.nth(0)).data?.['onNotificationReceived']).toMatchObject({ text: 'warm-up' });
    expect((await alice.nth(1, 5000)).data?.['onNotificationReceived']).toMatchObject({ text: 'maybe' });
  });

  it('a refused publish while not connected is SERVICE_UNAVAILABLE: nothing was sent', async () => {
    const other = await startHeraldProcess('publish', { env: { REDIS_URL: 'redis://127.0.0.1:1', REDIS_COMMAND_TIMEOUT_MS: String(TIMEOUT_MS) } });
    const response = await postGraphQL(`http://127.0.0.1:${other.publishPort}/graphql`, SEND, {
      token: serviceToken(),
      variables: { to: 'alice', text: 'never' },
    });
    expect(errorCode(response)).toBe('SERVICE_UNAVAILABLE');
    expect(response.body.errors?.[0]?.message).toMatch(/nothing was sent|not sent|not connected/);
  });

  it('a SUBSCRIBE that timed out is undone once Redis resumes', async () => {
    const channel = 'herald:{acme}:user:bruno';
    freeze();
    let bruno;
    try {
      bruno = collect(wsClient(`ws://127.0.0.1:${subscribe.subscribePort}/graphql`, { token: userToken('bruno') }), ON_NOTIFICATION, {
        userName: 'bruno',
      });
      await bruno.ended(TIMEOUT_MS * 4);
    } finally {
      thaw();
    }
    expect(bruno.results[0]?.errors?.[0]).toMatchObject({ extensions: { code: 'SERVICE_UNAVAILABLE' } });
    // Redis now runs the SUBSCRIBE it had queued, then the UNSUBSCRIBE sent behind it.
    await waitFor(async () => (await readyz(subscribe.subscribePort)) === 200, 'the subscribe server to be ready', 5000);
    await waitFor(async () => (await redis.numsub(channel)) === 0, 'the timed-out SUBSCRIBE to be undone', 3000);
    // And it stays undone (no late resubscribe).
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await redis.numsub(channel)).toBe(0);
  });
});
