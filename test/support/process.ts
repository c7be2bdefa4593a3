/**
 * Herald as a real process, for fault and abuse tests: `node --import tsx src/main.ts
 * <mode>`, or the image's own command `node dist/main.js <mode>` (no npm in between, so
 * the pid is Herald's own), on port 0, with the ports read from its banner. Each process
 * is stopped by {@link stopAllProcesses}.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { waitFor } from './herald.js';
import { TEST_SECRET } from './tokens.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const running: HeraldProcess[] = [];
const spawned: ChildProcess[] = [];

export interface HeraldProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Everything it printed so far (stdout and stderr). */
  readonly output: () => string;
  readonly subscribePort: number | undefined;
  readonly publishPort: number | undefined;
  readonly grpcPort: number | undefined;
  readonly publishGrpcPort: number | undefined;
  /** The internal metrics port, when `METRICS_PORT` is set. */
  readonly metricsPort: number | undefined;
  /** Resolves with the exit code, or the signal that ended it. */
  readonly exited: Promise<number | string | null>;
  /** Its resident set size now, in bytes (from /proc). */
  rss(): number;
  /** Sends `signal` and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<number | string | null>;
}

export interface HeraldProcessOptions {
  /** Extra environment, over a production-like default (NODE_ENV=production, the test secret). */
  env?: Record<string, string>;
  /** Flags for node itself, e.g. `--max-old-space-size=256`. */
  nodeArgs?: string[];
  /** How long to wait for the banner. @default 15000 */
  startTimeoutMs?: number;
  /**
   * `src`: the TypeScript through tsx; `dist`: the compiled build, exactly as the image
   * runs it (vitest's global setup builds it).
   * @default 'src'
   */
  entry?: 'src' | 'dist';
}

export interface SpawnedHerald {
  readonly child: ChildProcess;
  /** Everything it printed so far (stdout and stderr). */
  readonly output: () => string;
  /** Resolves with the exit code, or the signal that ended it. */
  readonly exited: Promise<number | string | null>;
}

/** Spawns Herald with the test environment and collects its output; does not wait for anything. */
export function spawnHerald(mode: 'all' | 'subscribe' | 'publish' | 'push', options: HeraldProcessOptions = {}): SpawnedHerald {
  const entry = options.entry === 'dist' ? ['dist/main.js'] : ['--import', 'tsx', 'src/main.ts'];
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), ...entry, mode], {
    cwd: ROOT,
    env: {
      ...process.env,
      NODE_ENV: 'production',
      JWT_SECRET: TEST_SECRET,
      HOST: '127.0.0.1',
      SUBSCRIBE_PORT: '0',
      PUBLISH_PORT: '0',
      GRPC_PORT: '0',
      PUBLISH_GRPC_PORT: '0',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | string | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  spawned.push(child);
  return { child, output: () => output, exited };
}

/** Starts Herald and resolves once its banner names its ports (the push worker's: its consumer). */
export async function startHeraldProcess(mode: 'all' | 'subscribe' | 'publish' | 'push', options: HeraldProcessOptions = {}): Promise<HeraldProcess> {
  const { child, output, exited } = spawnHerald(mode, options);
  let exitedEarly = false;
  void exited.then(() => (exitedEarly = true));
  const expected = mode === 'push' ? /push worker \S+: (sending|dry-run)[^\n]*\n/ : mode === 'publish' ? /publish \(HTTP POST\)/ : /subscribe \(WebSocket/;
  const bannerPrinted = (): boolean => expected.test(output()) && (mode === 'push' || /gRPC/.test(output()));
  try {
    await waitFor(() => exitedEarly || bannerPrinted(), `herald ${mode} to start`, options.startTimeoutMs ?? 15_000);
  } catch (error) {
    child.kill('SIGKILL');
    throw new Error(`${String(error)}\n${output()}`);
  }
  if (exitedEarly) throw new Error(`herald ${mode} exited at start:\n${output()}`);
  const port = (label: RegExp): number | undefined => {
    const match = label.exec(output());
    return match?.[1] === undefined ? undefined : Number(match[1]);
  };
  const pid = child.pid ?? 0;
  const started: HeraldProcess = {
    child,
    pid,
    output,
    subscribePort: port(/subscribe \(WebSocket[^\n]*?:(\d+)\/graphql/),
    publishPort: port(/publish \(HTTP POST\): http:\/\/localhost:(\d+)/),
    grpcPort: port(/gRPC feed[^\n]*?localhost:(\d+)/),
    publishGrpcPort: port(/gRPC publish[^\n]*?localhost:(\d+)/),
    metricsPort: port(/metrics \(Prometheus[^\n]*?localhost:(\d+)\/metrics/),
    exited,
    rss: () => residentBytes(pid),
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
  running.push(started);
  return started;
}

/** Kills every process started here (call in `afterAll`). */
export async function stopAllProcesses(): Promise<void> {
  await Promise.all(running.splice(0).map((started) => started.stop('SIGKILL')));
  for (const child of spawned.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

/** Resident set size of `pid` in bytes, or 0 once it has gone. */
export function residentBytes(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match?.[1] === undefined ? 0 : Number(match[1]) * 1024;
  } catch {
    return 0;
  }
}

/** The exit code (or signal) `exited` resolves with, or `'still running'` if it has not within `timeoutMs`. */
export function exitWithin(exited: Promise<number | string | null>, timeoutMs: number): Promise<number | string | null> {
  return Promise.race([exited, new Promise<string>((resolve) => setTimeout(resolve, timeoutMs, 'still running').unref())]);
}
