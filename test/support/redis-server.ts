/**
 * A private `redis-server` per test file, on a free port, in its own directory — never
 * the machine's shared one on 6379. It can be killed and started again on the same
 * port to test reconnection.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { PATIENCE_MS } from './patience.js';

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** The server's process id (it changes on `restart`). */
  readonly pid: number;
  /** A plain client for inspecting the server (PUBSUB NUMSUB, MONITOR…); closed by `stop`. */
  client(): Redis;
  /** How many subscribers `channel` has (`PUBSUB NUMSUB`). */
  numsub(channel: string): Promise<number>;
  /**
   * Every command the server runs from now on (MONITOR), each as its quoted words, e.g.
   * `"subscribe" "herald:{acme}:user:trent"`. On a plain socket: ioredis' `monitor()`
   * takes a MONITOR line that arrives in the same read as MONITOR's `+OK` for a reply to
   * a command it never sent ("Command queue state error").
   */
  monitor(): Promise<Monitor>;
  /** SIGKILLs the server (no shutdown, no goodbye to clients). */
  kill(): Promise<void>;
  /** Starts it again on the same port. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface Monitor {
  /** The commands seen so far, oldest first. */
  readonly commands: readonly string[];
  /** Beside each of {@link Monitor.commands}, who ran it: `lua` (inside a script) or the client's address. */
  readonly sources: readonly string[];
  stop(): void;
}

export interface RedisServerOptions {
  /** Keep data across a restart in an append-only file, fsynced on every write. @default false */
  appendOnly?: boolean;
}

export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'herald-redis-'));
  const persistence = options.appendOnly ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'];
  let port = await freePort();
  let child = await spawnRedis(port, dir, persistence).catch(async () => {
    port = await freePort(); // lost a race for the port: once more on another
    return spawnRedis(port, dir, persistence);
  });
  const clients: Redis[] = [];
  const client = (): Redis => {
    const redis = new Redis(port, '127.0.0.1', { lazyConnect: false, maxRetriesPerRequest: 1 });
    redis.on('error', () => undefined);
    clients.push(redis);
    return redis;
  };
  let inspector: Redis | undefined;
  const monitors: Monitor[] = [];
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid() {
      return child.pid ?? 0;
    },
    client,
    async numsub(channel) {
      inspector ??= client();
      const reply = (await inspector.pubsub('NUMSUB', channel)) as [string, number];
      return Number(reply[1]);
    },
    async monitor() {
      const monitor = await monitorCommands(port);
      monitors.push(monitor);
      return monitor;
    },
    async kill() {
      await endChild(child, 'SIGKILL');
    },
    async restart() {
      child = await spawnRedis(port, dir, persistence);
    },
    async stop() {
      for (const redis of clients) redis.disconnect();
      for (const monitor of monitors) monitor.stop();
      await endChild(child, 'SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Resolves once MONITOR is on: each later line (`+<time> [<db> <client>] "cmd" …`) is one command. */
function monitorCommands(port: number): Promise<Monitor> {
  return new Promise((resolve, reject) => {
    const commands: string[] = [];
    const sources: string[] = [];
    const socket = connect(port, '127.0.0.1');
    let buffered = '';
    let on = false;
    socket.setEncoding('utf8');
    socket.once('error', reject);
    socket.on('connect', () => socket.write('MONITOR\r\n'));
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      let end: number;
      while ((end = buffered.indexOf('\r\n')) >= 0) {
        const line = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        if (!on) {
          if (line !== '+OK') return reject(new Error(`MONITOR answered ${line}`));
          on = true;
          resolve({ commands, sources, stop: () => socket.destroy() });
          continue;
        }
        // `<time> [<db> <source>] "command" "arg" …`
        const close = line.indexOf(']');
        sources.push(line.slice(line.indexOf(' ', line.indexOf('[')) + 1, close));
        commands.push(line.slice(close + 2));
      }
    });
  });
}

/**
 * Waits until `monitor` has shown every command the server ran before this call: MONITOR
 * shows commands in the order they ran, so once a marker sent now on `client` appears,
 * all earlier ones have. Fails after `timeoutMs`.
 */
export async function untilSeen(monitor: Monitor, client: Redis, timeoutMs = 10_000): Promise<void> {
  const mark = `seen-${process.hrtime.bigint()}`;
  await client.echo(mark);
  const deadline = Date.now() + timeoutMs;
  while (!monitor.commands.some((command) => command.includes(mark))) {
    if (Date.now() > deadline) throw new Error(`MONITOR did not show ${mark} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A port free on 127.0.0.1 now (another process may take it before it is used). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

function spawnRedis(port: number, dir: string, persistence: string[]): Promise<ChildProcess> {
  return spawnUntilPing(port, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...persistence, '--dir', dir, '--loglevel', 'warning']);
}

/** Starts `redis-server` with `args` and resolves once it answers PING on `port` (10 s at most). */
export function spawnUntilPing(port: number, args: string[]): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let settled = false;
    const timer = setTimeout(() => fail(new Error(`redis-server on ${port} did not start: ${output}`)), PATIENCE_MS);
    const fail = (error: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(error);
    };
    child.once('error', fail);
    child.once('exit', (code) => fail(new Error(`redis-server on ${port} exited with ${code}: ${output}`)));
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const probe = async (): Promise<void> => {
      if (settled) return;
      const redis = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      redis.on('error', () => undefined);
      try {
        await redis.connect();
        await redis.ping();
        settled = true;
        clearTimeout(timer);
        child.removeAllListeners('exit');
        child.removeAllListeners('error');
        resolve(child);
      } catch {
        setTimeout(() => void probe(), 20);
      } finally {
        redis.disconnect();
      }
    };
    void probe();
  });
}

/** Sends `signal` to `child` and resolves once it has exited. */
export function endChild(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}
