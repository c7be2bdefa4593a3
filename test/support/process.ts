/**
 * Herald as a real process, for fault and abuse tests: the image's own command
 * `node dist/main.js <mode>` (no npm in between, so the pid is Herald's own), or
 * `node --import tsx src/main.ts <mode>`, on port 0, with the ports read from its banner. Each process
 * is stopped by {@link stopAllProcesses}.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { waitFor } from './herald.js';
import { TEST_SECRET } from './tokens.js';
import { PATIENCE_MS } from './patience.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const running: HeraldProcess[] = [];
const spawned: ChildProcess[] = [];

/** The roles `main.ts` runs. */
export type HeraldMode = 'all' | 'subscribe' | 'publish' | 'push';

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
  /** How long to wait for the banner (a process on a loaded machine has taken 15 s and more). @default 60000 (twice PATIENCE_MS) */
  startTimeoutMs?: number;
  /**
   * `dist`: the compiled build, exactly as the image runs it (vitest's global setup
   * builds it when stale); `src`: the TypeScript through tsx, which compiles every module
   * at start — seconds of CPU per process, which a loaded CI machine cannot spare.
   * @default 'dist'
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
export function spawnHerald(mode: HeraldMode, options: HeraldProcessOptions = {}): SpawnedHerald {
  const entry = options.entry === 'src' ? ['--import', 'tsx', 'src/main.ts'] : ['dist/main.js'];
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

/** Starts Herald and resolves once its banner names its ports. */
export async function startHeraldProcess(mode: HeraldMode, options: HeraldProcessOptions = {}): Promise<HeraldProcess> {
  const { child, output, exited } = spawnHerald(mode, options);
  let exitedEarly = false;
  void exited.then(() => (exitedEarly = true));
  const expected = mode === 'publish' ? /publish \(HTTP POST\)/ : mode === 'push' ? /push worker \S+: (sending|dry-run)[^\n]*\n/ : /subscribe \(WebSocket/;
  // The banner's last line: the push worker has no gRPC port, and names its metrics port when it has one.
  const last = mode !== 'push' ? /gRPC/ : options.env?.['METRICS_PORT'] === undefined ? expected : /metrics \(Prometheus[^\n]*\/metrics/;
  try {
    await waitFor(() => exitedEarly || (expected.test(output()) && last.test(output())), `herald ${mode} to start`, options.startTimeoutMs ?? 2 * PATIENCE_MS);
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
    metricsPort: port(/metrics \(Prometheus[^\n]*?:(\d+)\/metrics/),
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

/**
 * CPU time `pid` has used so far (user + system), in ms, from /proc (10 ms resolution).
 * CPU time, unlike latency, barely moves when other work shares the machine: a test
 * that must tell cheap work from costly work on a busy CI machine bounds this.
 */
export function cpuMillis(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces), from field 3 on: utime is 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
}

/**
 * The TCP addresses `pid` listens on (`127.0.0.2:43117`; IPv6 as `[::1]:43117`), from its
 * socket descriptors and /proc/net/tcp{,6}. Unlike a connect, which reaches whichever
 * process listens on an address, this says which addresses this process bound: another
 * test's server on 127.0.0.1 may have the port number this one has on 127.0.0.2.
 */
export function listeningAddresses(pid: number): string[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const socket = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (socket?.[1] !== undefined) inodes.add(socket[1]);
    } catch {
      // closed while listed
    }
  }
  const addresses: string[] = [];
  for (const table of ['tcp', 'tcp6']) {
    for (const line of readFileSync(`/proc/${pid}/net/${table}`, 'utf8').trim().split('\n').slice(1)) {
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
      const [, local = '', , state, , , , , , inode = ''] = line.trim().split(/\s+/);
      if (state !== '0A' || !inodes.has(inode)) continue; // 0A: LISTEN
      const [hexAddress = '', hexPort = ''] = local.split(':');
      addresses.push(`${hostOf(hexAddress)}:${parseInt(hexPort, 16)}`);
    }
  }
  return addresses;
}

/** An address as /proc/net/tcp{,6} writes it (32-bit words in host order, little-endian here). */
function hostOf(hex: string): string {
  const words = (hex.match(/.{8}/g) ?? []).map((word) => (word.match(/../g) ?? []).reverse().join(''));
  if (words.length === 1) return (words[0]?.match(/../g) ?? []).map((byte) => parseInt(byte, 16)).join('.');
  const groups = words.join('').match(/.{4}/g) ?? [];
  return `[${groups.map((group) => parseInt(group, 16).toString(16)).join(':').replace(/(^|:)0(:0)+(:|$)/, '::')}]`;
}

/** USER_HZ, which Linux fixes at 100 for /proc on every architecture Node runs on. */
const CLOCK_TICKS_PER_SECOND = 100;

/** The exit code (or signal) `exited` resolves with, or `'still running'` if it has not within `timeoutMs`. */
export function exitWithin(exited: Promise<number | string | null>, timeoutMs: number): Promise<number | string | null> {
  return Promise.race([exited, new Promise<string>((resolve) => setTimeout(resolve, timeoutMs, 'still running').unref())]);
}
