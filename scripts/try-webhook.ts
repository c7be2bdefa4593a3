/**
 * Watch a real, signed webhook arrive on a laptop, in two commands (docs/push.md):
 *
 *   npx tsx scripts/try-webhook.ts               # Herald (all: subscribe, publish, push worker) and a webhook receiver
 *   npx tsx scripts/try-webhook.ts send "Hello"   # alice registers a webhook at the receiver; a service sends to her
 *
 * The first runs a development Herald in this process whose push worker sends for real
 * (a development worker is a dry-run one: it only logs what it would send), with a fresh
 * `JWT_SECRET` and `PUSH_WEBHOOK_SECRET`, `PUSH_ALLOWED_NETWORKS=127.0.0.1/32` so it may
 * reach the receiver, and a receiver on 127.0.0.1 that verifies each delivery with the
 * `standardwebhooks` package and prints it. It needs a Redis (`REDIS_URL`, default
 * redis://127.0.0.1:6379): `docker run --rm -p 6379:6379 redis:7-alpine` is one. What the
 * second needs (the URLs, the secret to sign tokens with) is in a file beside the
 * system's temporary files (`TRY_WEBHOOK_STATE` to put it elsewhere), removed on Ctrl-C.
 * Every other setting is Herald's own (`SUBSCRIBE_PORT`, `PUBLISH_PORT`…).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import jwt from 'jsonwebtoken';
import { Webhook } from 'standardwebhooks';
import { readConfig } from '../src/config/index.js';
import { startHerald } from '../src/servers/herald.js';

interface State {
  readonly subscribeUrl: string;
  readonly publishUrl: string;
  readonly receiverUrl: string;
  readonly jwtSecret: string;
}

const STATE_FILE = process.env['TRY_WEBHOOK_STATE'] ?? join(tmpdir(), 'herald-try-webhook.json');

async function serve(): Promise<void> {
  const jwtSecret = randomBytes(48).toString('base64');
  const webhookSecret = `whsec_${randomBytes(32).toString('base64')}`;
  const verifier = new Webhook(webhookSecret);
  const receiver = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const headers = Object.fromEntries(Object.entries(request.headers).map(([name, value]) => [name, String(value)]));
      try {
        const payload = verifier.verify(body, headers) as { id: string; user: string; text: string };
        console.log(`webhook verified: ${headers['webhook-id']} for ${payload.user} (${request.url}): ${JSON.stringify(payload)}`);
        response.writeHead(204).end();
      } catch (error) {
        console.log(`webhook refused: the signature does not verify (${error instanceof Error ? error.message : String(error)})`);
        response.writeHead(401).end();
      }
    });
  });
  await new Promise<void>((resolve) => receiver.listen(Number(process.env['TRY_WEBHOOK_PORT'] ?? 0), '127.0.0.1', resolve));
  const receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;

  const env = process.env;
  const redisSet = [env['REDIS_URL'], env['REDIS_SENTINELS'], env['REDIS_CLUSTER_NODES']].some((value) => value !== undefined && value.trim() !== '');
  const config = readConfig({
    ...env,
    ...(redisSet ? {} : { REDIS_URL: 'redis://127.0.0.1:6379' }),
    JWT_SECRET: jwtSecret,
    PUSH_WEBHOOK_SECRET: webhookSecret,
    PUSH_ALLOWED_NETWORKS: '127.0.0.1/32',
  });
  // development, but sending for real: the one difference from `npm start`
  const quiet = { info: (...args: unknown[]) => /^push:/.test(String(args[0])) && console.log(...args), warn: console.warn, error: console.error };
  const herald = await startHerald({ ...config, push: { ...config.push, dryRun: false } }, 'all', quiet);
  if (herald.pushWorker === undefined) {
    await herald.stop();
    receiver.close();
    throw new Error(`no Redis at ${config.redisUrl ?? 'REDIS_URL'}: start one (docker run --rm -p 6379:6379 redis:7-alpine) or set REDIS_URL`);
  }
  const state: State = {
    subscribeUrl: `http://127.0.0.1:${herald.subscribePort ?? 0}/graphql`,
    publishUrl: `http://127.0.0.1:${herald.publishPort ?? 0}/graphql`,
    receiverUrl,
    jwtSecret,
  };
  writeFileSync(STATE_FILE, JSON.stringify(state), { mode: 0o600 });
  const stop = (): void => {
    rmSync(STATE_FILE, { force: true });
    receiver.close();
    void herald.stop().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  console.log(`herald: subscribe ${state.subscribeUrl}, publish ${state.publishUrl}, push worker sending; webhook receiver on ${receiverUrl}`);
  console.log('now run: npx tsx scripts/try-webhook.ts send "Hello"');
}

/** One GraphQL request; its data, or an error naming what failed. */
async function graphql(url: string, token: string, query: string, variables: Record<string, unknown>): Promise<Record<string, unknown>> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const answer = (await response.json()) as { data?: Record<string, unknown>; errors?: Array<{ message: string }> };
  if (answer.errors !== undefined || answer.data === undefined) throw new Error(`${url}: ${JSON.stringify(answer.errors ?? answer)}`);
  return answer.data;
}

async function send(text: string): Promise<void> {
  let state: State;
  try {
    state = JSON.parse(readFileSync(STATE_FILE, 'utf8')) as State;
  } catch {
    throw new Error(`nothing to send to: run \`npx tsx scripts/try-webhook.ts\` first (${STATE_FILE} is missing)`);
  }
  const alice = jwt.sign({ sub: 'alice', tenant: 'acme' }, state.jwtSecret, { algorithm: 'HS256', expiresIn: 600 });
  const service = jwt.sign({ sub: 'try-webhook', tenant: 'acme', scope: 'notifications:publish' }, state.jwtSecret, { algorithm: 'HS256', expiresIn: 600 });
  const registered = await graphql(state.subscribeUrl, alice, 'mutation ($url: String!) { registerDevice(device: { kind: WEBHOOK, url: $url }) { id } }', {
    url: `${state.receiverUrl}/alice`,
  });
  const sent = await graphql(state.publishUrl, service, 'mutation ($text: String!) { sendNotification(to: "alice", text: $text, push: ALWAYS) { id } }', { text });
  console.log(`alice's webhook device ${JSON.stringify(registered['registerDevice'])}; sent ${JSON.stringify(sent['sendNotification'])}: watch the first terminal`);
}

const [command, ...rest] = process.argv.slice(2);
(command === 'send' ? send(rest.join(' ') || 'Hello from Herald') : serve()).catch((error: unknown) => {
  console.error(`try-webhook: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
