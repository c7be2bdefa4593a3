/**
 * A burst of 50,000 notifications to one user whose gRPC Feed reads at full speed: the
 * reader gets every one, exactly once and in order, and is not ended as a slow consumer
 * — whatever did not fit its bound (`MAX_BUFFERED_BYTES`) is read from history once it
 * has room. A second subscribe server with tiny bounds makes that happen hundreds of
 * times in one burst. Real processes, real Redis, the real @grpc/grpc-js client.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, closeGrpcClients, feedClient, readFeed } from '../../support/grpc.js';
import { waitFor } from '../../support/herald.js';
import { postGraphQL } from '../../support/http.js';
import { startHeraldProcess, stopAllProcesses, type HeraldProcess } from '../../support/process.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';
import { serviceToken, userToken } from '../../support/tokens.js';

const BATCH = `mutation Batch($notifications: [NotificationInput!]!) { sendNotifications(notifications: $notifications) { id } }`;

let redis: RedisServer;
let subscribe: HeraldProcess;
let tight: HeraldProcess;
let publish: HeraldProcess;
beforeAll(async () => {
  redis = await startRedisServer();
  [subscribe, tight, publish] = await Promise.all([
    startHeraldProcess('subscribe', { env: { REDIS_URL: redis.url } }),
    startHeraldProcess('subscribe', { env: { REDIS_URL: redis.url, MAX_BUFFERED_BYTES: '16384', MAX_QUEUED_NOTIFICATIONS: '50' } }),
    // The user's history keeps the whole burst, so a reader behind by all of it can still
    // catch up. The 10,000 publish scripts in flight queue in Redis; on a loaded machine the
    // last ones wait past the default command timeout, which this test is not about.
    startHeraldProcess('publish', {
      env: { REDIS_URL: redis.url, MAX_MESSAGE_BYTES: String(1024 * 1024), HISTORY_MAX_LENGTH: '60000', REDIS_COMMAND_TIMEOUT_MS: '10000' },
    }),
  ]);
});
afterAll(async () => {
  closeGrpcClients();
  await stopAllProcesses();
  await redis.stop();
});

describe('a burst to a gRPC reader at full speed', () => {
  it('delivers all 50,000, in order, without RESOURCE_EXHAUSTED', async () => {
    const user = 'burst';
    const feed = readFeed(feedClient(subscribe.grpcPort ?? 0).feed({ userName: user, since: '' }, bearer(userToken(user))));
    const tightFeed = readFeed(feedClient(tight.grpcPort ?? 0).feed({ userName: user, since: '' }, bearer(userToken(user))));
    await waitFor(async () => (await redis.numsub(`herald:{acme}:user:${user}`)) === 2, 'both feeds');
    const url = `http://127.0.0.1:${publish.publishPort}/graphql`;
    const ids: string[] = [];
    // Ten batches of 1000 in flight at a time, five times over.
    for (let round = 0; round < 5; round++) {
      const answers = await Promise.all(
        Array.from({ length: 10 }, (_, batch) =>
          postGraphQL(url, BATCH, {
            token: serviceToken(),
            variables: { notifications: Array.from({ length: 1000 }, (_, n) => ({ to: user, text: `r${round}b${batch}n${n}` })) },
          }),
        ),
      );
      for (const { body } of answers) {
        expect(body.errors).toBeUndefined();
        ids.push(...(body.data?.['sendNotifications'] as Array<{ id: string }>).map(({ id }) => id));
      }
    }
    for (const reader of [feed, tightFeed]) {
      let end: unknown;
      void reader.ended(60_000).then(
        (error) => (end = error ?? 'OK'),
        () => undefined,
      );
      await waitFor(() => reader.events.length >= ids.length || end !== undefined, `all ${ids.length} notifications (${reader === feed ? "default" : "tight"} bounds; got ${reader.events.length})`, 30_000);
      expect(end).toBeUndefined();
      expect(reader.events.length).toBe(50_000);
      const received = reader.events.map((event) => ('notification' in event ? event.notification.id : 'gap'));
      expect(new Set(received).size).toBe(50_000);
      // In order: the order of ids the publisher got back is the order they were stored in, per batch.
      const rank = new Map(received.map((id, index) => [id, index]));
      for (const batchStart of Array.from({ length: 50 }, (_, n) => n * 1000)) {
        const positions = ids.slice(batchStart, batchStart + 1000).map((id) => rank.get(id) ?? -1);
        expect(positions.every((position, index) => index === 0 || position > (positions[index - 1] ?? -1))).toBe(true);
      }
      expect([...received].sort()).toEqual([...ids].sort());
      reader.cancel();
    }
  }, 60_000);
});
