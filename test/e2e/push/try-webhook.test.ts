/**
 * docs/push.md's "watch a real, signed webhook arrive on a laptop": its two commands, run
 * exactly as written (`npx tsx scripts/try-webhook.ts`, then `… send "…"`) as processes,
 * on a real Redis. The first prints the delivery its receiver verified with the
 * `standardwebhooks` package — the notification the second sent, to alice's webhook —
 * and refuses a request whose signature does not verify (so "verified" means verified).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../support/herald.js';
import { PATIENCE_MS } from '../../support/patience.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
let redis: RedisServer;
let serve: ChildProcess | undefined;
const env = (): NodeJS.ProcessEnv => ({
  ...process.env,
  NODE_ENV: 'development',
  REDIS_URL: redis.url,
  // free ports, and a state file of this test's own, so a developer's own run is left alone
  SUBSCRIBE_PORT: '0',
  PUBLISH_PORT: '0',
  GRPC_PORT: '0',
  PUBLISH_GRPC_PORT: '0',
  TRY_WEBHOOK_STATE: join(mkdtempSync(join(tmpdir(), 'herald-try-')), 'state.json'),
});
let testEnv: NodeJS.ProcessEnv;

beforeAll(async () => {
  redis = await startRedisServer();
  testEnv = env();
});
afterAll(async () => {
  // npx → tsx → node: the whole group
  if (serve?.pid !== undefined && serve.exitCode === null) process.kill(-serve.pid, 'SIGTERM');
  await redis?.stop();
});

/** Runs a command to its end; its output and exit code. */
function run(command: string, args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: ROOT, env: testEnv });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('exit', (code) => resolve({ code, output }));
  });
}

describe('scripts/try-webhook.ts', () => {
  it('shows a real, signed webhook arrive, verified, in two commands', async () => {
    serve = spawn('npx', ['tsx', 'scripts/try-webhook.ts'], { cwd: ROOT, env: testEnv, detached: true });
    let output = '';
    serve.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    serve.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await waitFor(() => output.includes('now run: npx tsx scripts/try-webhook.ts send "Hello"'), 'the first command to be ready', 2 * PATIENCE_MS).catch((error: unknown) => {
      throw new Error(`${String(error)}\n${output}`);
    });
    const receiverUrl = /webhook receiver on (http:\/\/127\.0\.0\.1:\d+)/.exec(output)?.[1] ?? '';

    const sent = await run('npx', ['tsx', 'scripts/try-webhook.ts', 'send', 'Hello from the docs']);
    expect(sent.code, sent.output).toBe(0);
    const notificationId = /sent \{"id":"([^"]+)"\}/.exec(sent.output)?.[1];
    expect(notificationId).toBeDefined();

    await waitFor(() => output.includes('webhook verified:'), 'the signed webhook to arrive', PATIENCE_MS).catch((error: unknown) => {
      throw new Error(`${String(error)}\n${output}`);
    });
    const line = output.split('\n').find((candidate) => candidate.startsWith('webhook verified:')) ?? '';
    expect(line).toMatch(/^webhook verified: msg_\S+ for alice \(\/alice\): /);
    expect(JSON.parse(line.slice(line.indexOf('{')))).toMatchObject({ id: notificationId, text: 'Hello from the docs', user: 'alice', tenant: 'acme', sender: 'try-webhook' });

    // a request signed with another key is refused, and printed as such
    const forged = await fetch(`${receiverUrl}/alice`, {
      method: 'POST',
      headers: { 'webhook-id': 'msg_forged', 'webhook-timestamp': String(Math.floor(Date.now() / 1000)), 'webhook-signature': `v1,${Buffer.alloc(32).toString('base64')}` },
      body: '{"id":"forged"}',
    });
    expect(forged.status).toBe(401);
    await waitFor(() => output.includes('webhook refused: the signature does not verify'), 'the forged request to be refused', PATIENCE_MS);
    expect(output.match(/webhook verified:/g)).toHaveLength(1);
  });
});
