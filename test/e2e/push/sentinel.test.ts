/**
 * Push behind Sentinel (master, replica, three sentinels): the servers register devices
 * and follows and queue pushes, and the push worker (`main.ts push`) sends them, all on
 * `REDIS_SENTINELS`. The master is killed while notifications are sent through a publish
 * server with `REDIS_MIN_REPLICAS_ACKED=1`: every one it acknowledged is pushed, and once
 * the sentinels have promoted the replica, pushes to a user and to a topic go out again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPushDeployment, type PushDeployment, type SendOutcome } from '../../support/push-deployment.js';
import { eventually } from '../../support/push-worker.js';
import { startSentinelTopology, type SentinelTopology } from '../../support/redis-topology.js';

const TENANT = 'acme';

let topology: SentinelTopology;
let deployment: PushDeployment;

beforeAll(async () => {
  topology = await startSentinelTopology();
  deployment = await startPushDeployment({
    REDIS_SENTINELS: topology.sentinels.map(({ host, port }) => `${host}:${port}`).join(','),
    REDIS_SENTINEL_MASTER: topology.masterName,
    // 8 sends at once to the receiver (32 by default): its 1 s answers hold a backlog even when sends are slow
    PUSH_DESTINATION_CONCURRENCY: '8',
  });
}, 60_000);
afterAll(async () => {
  await deployment?.stop();
  await topology?.stop();
});

/** Fails naming what is missing unless every outcome's notification was pushed to `user`. */
async function expectPushed(user: string, outcomes: readonly SendOutcome[], timeoutMs = 20_000): Promise<void> {
  const missing = (): SendOutcome[] => outcomes.filter((outcome) => !deployment.pushed(TENANT, user).includes(outcome.id ?? ''));
  await eventually(() => missing().length === 0, `the pushes of ${outcomes.length} acknowledged notifications to ${user}`, timeoutMs).catch((error: unknown) => {
    throw new Error(`${String(error)}; missing ${missing().map((outcome) => outcome.text).join(', ')}; logged: ${deployment.logged.slice(-5).join(' | ')}`);
  });
}

describe('push behind Sentinel', () => {
  it('pushes to a user and to a topic through the worker on REDIS_SENTINELS', async () => {
    await deployment.register(TENANT, 'bob');
    await deployment.register(TENANT, 'carol');
    await deployment.follow(TENANT, 'carol', 'news');
    const toBob = await deployment.send(TENANT, 'bob', 'hello bob', { replicated: false });
    const toNews = await deployment.send(TENANT, 'news', 'breaking', { audience: 'TOPIC', replicated: false });
    expect([toBob.message, toNews.message]).toEqual([undefined, undefined]);
    await expectPushed('bob', [toBob]);
    await expectPushed('carol', [toNews]);
  });

  it('a killed master: every push of a notification a replica acknowledged goes out, and pushes work on the promoted replica', async () => {
    // Receivers that take their time: the worker holds unfinished pushes when the master dies.
    deployment.hooks.answer = () => ({ status: 204, delayMs: 1000 });
    const outcomes: SendOutcome[] = [];
    let stopping = false;
    let sent = 0;
    const loop = (async () => {
      while (!stopping) {
        const outcome = await deployment.send(TENANT, 'bob', `n ${sent++}`);
        outcomes.push(outcome);
        // Paced like a client that backs off, so the failed sends do not crowd the machine.
        await new Promise((resolve) => setTimeout(resolve, outcome.id === undefined ? 50 : 5));
      }
    })();
    const acknowledged = (): SendOutcome[] => outcomes.filter((outcome) => outcome.id !== undefined);
    let unpushedAtKill = 0;
    try {
      const unpushed = (): number => acknowledged().filter((outcome) => !deployment.pushed(TENANT, 'bob').includes(outcome.id ?? '')).length;
      await eventually(() => acknowledged().length >= 20 && unpushed() >= 5, '20 acknowledged sends, 5 of them not yet pushed', 30_000).catch((error: unknown) => {
        throw new Error(`${String(error)}: ${acknowledged().length} acknowledged, ${unpushed()} not yet pushed`);
      });
      unpushedAtKill = unpushed();
      const killed = await topology.killMaster();
      await topology.waitForPromotion(killed, 15_000);
    } finally {
      stopping = true;
      await loop;
    }
    // The promoted master has no replica left: nothing is acknowledged by this publisher
    // after the kill, and every notification it acknowledged before is pushed.
    const codes = new Set(outcomes.filter((outcome) => outcome.id === undefined).map((outcome) => outcome.code));
    expect([...codes].every((code) => code === 'SERVICE_UNAVAILABLE' || code === 'OUTCOME_UNKNOWN')).toBe(true);
    await expectPushed('bob', acknowledged());
    deployment.hooks.answer = () => ({ status: 204 });
    const pushes = deployment.pushed(TENANT, 'bob');
    console.info(
      `push behind Sentinel, failover: ${outcomes.length} sends, ${acknowledged().length} acknowledged by a replica and all pushed (${unpushedAtKill} not yet when the master died); ` +
        `the rest failed (${[...codes].join(', ')}); ${pushes.length - new Set(pushes).size} pushes sent twice`,
    );

    // The servers and the worker followed the failover: a user's and a topic's pushes go out.
    let again: SendOutcome | undefined;
    await eventually(async () => (again = await deployment.send(TENANT, 'bob', 'after the failover', { replicated: false })).id !== undefined, 'a send on the promoted master', 20_000);
    const topic = await deployment.send(TENANT, 'news', 'news after the failover', { audience: 'TOPIC', replicated: false });
    expect(topic.code).toBeUndefined();
    await expectPushed('bob', again ? [again] : []);
    await expectPushed('carol', [topic]);
  }, 90_000);
});
