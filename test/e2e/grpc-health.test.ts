/**
 * gRPC health (`grpc.health.v1.Health`) and server reflection on both gRPC servers, with
 * the real @grpc/grpc-js client: SERVING while the broker is ready, NOT_SERVING while
 * Redis is gone and once the server is stopping; reflection lists Herald's services and
 * health, and describes them.
 */
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS, startGrpcFeed, startGrpcPublish, startHeraldPair, stopAll } from '../support/herald.js';
import { closeGrpcClients, healthCheck, healthClient, healthWatch, reflect } from '../support/grpc.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';

const FEED = 'herald.v1.NotificationFeed';
const PUBLISHER = 'herald.v1.NotificationPublisher';
const HEALTH = 'grpc.health.v1.Health';

let redis: RedisServer;
let feedPort: number;
let publishPort: number;

beforeAll(async () => {
  redis = await startRedisServer();
  const { subscribe, publish } = await startHeraldPair(redis.url);
  feedPort = (await startGrpcFeed(subscribe)).port;
  publishPort = (await startGrpcPublish(publish)).port;
});

afterAll(async () => {
  closeGrpcClients();
  await stopAll();
  await redis.stop();
});

describe('grpc.health.v1.Health', () => {
  it('answers Check with SERVING for the server and each of its services', async () => {
    const feed = healthClient(feedPort);
    expect(await healthCheck(feed, '')).toBe('SERVING');
    expect(await healthCheck(feed, FEED)).toBe('SERVING');
    const publish = healthClient(publishPort);
    expect(await healthCheck(publish, '')).toBe('SERVING');
    expect(await healthCheck(publish, PUBLISHER)).toBe('SERVING');
  });

  it('answers NOT_FOUND for a service this server does not serve', async () => {
    await expect(healthCheck(healthClient(feedPort), PUBLISHER)).rejects.toMatchObject({ code: status.NOT_FOUND });
    await expect(healthCheck(healthClient(publishPort), FEED)).rejects.toMatchObject({ code: status.NOT_FOUND });
  });

  it('lists every service it reports on', async () => {
    const client = healthClient(feedPort);
    const statuses = await new Promise<Record<string, { status: string }>>((resolve, reject) =>
      client.list({}, (error, response) => (error ? reject(error) : resolve(response.statuses))),
    );
    expect(statuses).toEqual({ '': { status: 'SERVING' }, [FEED]: { status: 'SERVING' } });
  });

  it('sends SERVICE_UNKNOWN on Watch of an unknown service and keeps the call open', async () => {
    const watch = healthWatch(healthClient(feedPort), 'no.such.Service');
    expect(await watch.nth(0)).toBe('SERVICE_UNKNOWN');
    // Still open: a status sent after it would end it; Check on the same server still answers.
    expect(await healthCheck(healthClient(feedPort))).toBe('SERVING');
    expect(watch.statuses).toEqual(['SERVICE_UNKNOWN']);
  });

  it('follows the broker on Watch: NOT_SERVING while Redis is gone, SERVING once it is back', async () => {
    const feedWatch = healthWatch(healthClient(feedPort));
    const publishWatch = healthWatch(healthClient(publishPort), PUBLISHER);
    expect(await feedWatch.nth(0)).toBe('SERVING');
    expect(await publishWatch.nth(0)).toBe('SERVING');

    await redis.kill();
    expect(await feedWatch.nth(1)).toBe('NOT_SERVING');
    expect(await publishWatch.nth(1)).toBe('NOT_SERVING');
    expect(await healthCheck(healthClient(feedPort))).toBe('NOT_SERVING');

    await redis.restart();
    expect(await feedWatch.nth(2, 10_000)).toBe('SERVING');
    expect(await publishWatch.nth(2, 10_000)).toBe('SERVING');
    // One message per change: nothing repeated while the status held.
    expect(feedWatch.statuses).toEqual(['SERVING', 'NOT_SERVING', 'SERVING']);
  });
});

describe('server reflection', () => {
  it("lists each server's Herald service and health", async () => {
    const feed = await reflect(feedPort, { listServices: '*' });
    expect(feed.listServicesResponse?.service.map(({ name }) => name).sort()).toEqual([HEALTH, FEED].sort());
    const publish = await reflect(publishPort, { listServices: '*' });
    expect(publish.listServicesResponse?.service.map(({ name }) => name).sort()).toEqual([HEALTH, PUBLISHER].sort());
  });

  it('describes each service (as `grpcurl describe` asks: the file that declares it)', async () => {
    const filesOf = async (symbol: string): Promise<string> => {
      const { fileDescriptorResponse } = await reflect(feedPort, { fileContainingSymbol: symbol });
      return (fileDescriptorResponse?.fileDescriptorProto ?? []).map((bytes) => Buffer.from(bytes).toString('latin1')).join('\n');
    };
    const feed = await filesOf(FEED);
    for (const name of ['herald.v1', 'NotificationFeed', 'FeedRequest', 'FeedResponse']) expect(feed).toContain(name);
    const health = await filesOf(HEALTH);
    for (const name of ['grpc.health.v1', 'HealthCheckRequest', 'Watch']) expect(health).toContain(name);
    const unknown = await reflect(feedPort, { fileContainingSymbol: 'no.such.Service' });
    expect(unknown.errorResponse?.errorCode).toBe(status.NOT_FOUND);
  });
});

describe('stopping', () => {
  it('sends NOT_SERVING to watchers, ends their calls with UNAVAILABLE, and does not wait on them', async () => {
    const { subscribe } = await startHeraldPair(redis.url);
    const feed = await startGrpcFeed(subscribe);
    const watch = healthWatch(healthClient(feed.port));
    const unknown = healthWatch(healthClient(feed.port), 'no.such.Service');
    expect(await watch.nth(0)).toBe('SERVING');
    expect(await unknown.nth(0)).toBe('SERVICE_UNKNOWN');

    const started = Date.now();
    await feed.stop();
    // An open call would hold grpc-js' graceful shutdown until it is forced after the
    // drain time (SHUTDOWN_DRAIN_MS, 10 s here): well under it means it did not wait.
    expect(Date.now() - started).toBeLessThan(DEFAULTS.shutdownDrainMs / 2);
    expect(watch.statuses).toEqual(['SERVING', 'NOT_SERVING']);
    expect(await watch.ended()).toMatchObject({ code: status.UNAVAILABLE });
    expect(await unknown.ended()).toMatchObject({ code: status.UNAVAILABLE });
  });
});
