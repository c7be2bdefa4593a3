/**
 * Start-up cost of the ways to run a subscribe server: time from spawn to `/readyz` 200
 * on a local Redis, and the resident memory of the whole process tree at that moment
 * (npm, sh, tsx's CLI and esbuild's service count too). Medians of `STARTUP_RUNS` runs
 * (default 5), the variants taking turns.
 *
 *   npm run build && npx tsx bench/startup.ts
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { freePort, startRedisServer } from '../test/support/redis-server.js';

const RUNS = Number(process.env['STARTUP_RUNS'] ?? '5');
const ROOT = new URL('..', import.meta.url);
const VARIANTS: Record<string, [string, ...string[]]> = {
  'node dist/main.js subscribe': [process.execPath, 'dist/main.js', 'subscribe'],
  'npm run start:subscribe (npm → sh → node dist/main.js)': ['npm', 'run', '--silent', 'start:subscribe'],
  'node --import tsx src/main.ts subscribe': [process.execPath, '--import', 'tsx', 'src/main.ts', 'subscribe'],
  'tsx src/main.ts subscribe (tsx CLI → node)': ['node_modules/.bin/tsx', 'src/main.ts', 'subscribe'],
};

/** Resident bytes of `pid` and every process below it. */
function treeRss(pid: number): number {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // gone
    }
  }
  let total = 0;
  for (let queue = [pid]; queue.length > 0; ) {
    const next = queue.shift() ?? 0;
    try {
      total += Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${next}/status`, 'utf8'))?.[1] ?? 0) * 1024;
    } catch {
      // gone
    }
    queue.push(...(children.get(next) ?? []));
  }
  return total;
}

async function measure(command: [string, ...string[]], redisUrl: string): Promise<{ ms: number; rss: number }> {
  const port = await freePort();
  const env = {
    ...process.env,
    NODE_ENV: 'production',
    JWT_SECRET: 'startup-bench-secret-at-least-32-bytes',
    REDIS_URL: redisUrl,
    HOST: '127.0.0.1',
    SUBSCRIBE_PORT: String(port),
    GRPC_PORT: String(await freePort()),
  };
  const started = performance.now();
  const child = spawn(command[0], command.slice(1), { cwd: ROOT, env, stdio: 'ignore', detached: true });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    for (;;) {
      if (performance.now() - started > 30_000) throw new Error(`${command.join(' ')} was not ready in 30 s`);
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`).then((response) => response.ok, () => false);
      if (ready) return { ms: performance.now() - started, rss: treeRss(child.pid ?? 0) };
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  } finally {
    process.kill(-(child.pid ?? 0), 'SIGTERM');
    await exited;
  }
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

const redis = await startRedisServer();
try {
  const results = new Map<string, Array<{ ms: number; rss: number }>>();
  for (let run = 0; run < RUNS; run++) {
    for (const [name, command] of Object.entries(VARIANTS)) {
      results.set(name, [...(results.get(name) ?? []), await measure(command, redis.url)]);
    }
  }
  console.log(`| command | to /readyz, ms | process tree RSS, MiB |\n|---|---|---|`);
  for (const [name, runs] of results) {
    const ms = median(runs.map((run) => run.ms));
    const rss = median(runs.map((run) => run.rss)) / 1024 / 1024;
    console.log(`| ${name} | ${ms.toFixed(0)} | ${rss.toFixed(0)} |`);
  }
} finally {
  await redis.stop();
}
