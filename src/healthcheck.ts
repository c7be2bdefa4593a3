/**
 * The image's health check, `node dist/healthcheck.js` (the slim image has no curl):
 * exits 0 when the Herald server in this container is ready, 1 when it is not.
 *
 * One image runs either role, so it asks `/readyz` on both SUBSCRIBE_PORT and
 * PUBLISH_PORT, read from the environment as the servers read them. A port that refuses
 * the connection is one this container's role does not serve; every port that answers
 * must answer 200, and at least one must answer.
 */
import { readConfig } from './config/index.js';

/** How long one `/readyz` may take before it counts as not ready (Docker's own timeout is longer). */
const PROBE_TIMEOUT_MS = 2000;

type Probe = 'ready' | 'not ready' | 'not listening';

async function probe(host: string, port: number): Promise<Probe> {
  try {
    const response = await fetch(`http://${host}:${port}/readyz`, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    return response.ok ? 'ready' : 'not ready';
  } catch (error) {
    // fetch rejects with a TypeError whose `cause` is the socket's error.
    const cause = error instanceof Error ? error.cause : undefined;
    const refused = typeof cause === 'object' && cause !== null && 'code' in cause && cause.code === 'ECONNREFUSED';
    return refused ? 'not listening' : 'not ready';
  }
}

async function main(): Promise<boolean> {
  const config = readConfig();
  // The servers listen on HOST; a wildcard address is reached on loopback.
  const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host.includes(':') ? `[${config.host}]` : config.host;
  const ports = { SUBSCRIBE_PORT: config.subscribePort, PUBLISH_PORT: config.publishPort };
  const probes = await Promise.all(Object.entries(ports).map(async ([variable, port]) => ({ variable, port, result: await probe(host, port) })));
  console.info(`herald healthcheck: ${probes.map(({ variable, port, result }) => `${variable} ${port} ${result}`).join(', ')}`);
  const answered = probes.filter(({ result }) => result !== 'not listening');
  return answered.length > 0 && answered.every(({ result }) => result === 'ready');
}

main().then(
  (healthy) => process.exit(healthy ? 0 : 1),
  (error: unknown) => {
    console.error(`herald healthcheck: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
