/**
 * Real Python `grpcio` clients for the interop tests: a virtual environment with pinned
 * grpcio and grpcio-tools, made once and cached under
 * `node_modules/.cache/herald-python-grpc/<hash of the requirements and the Python version>`,
 * the stubs generated from proto/ with grpcio-tools for each run, and
 * `test/support/grpc_client.py` run in it (default channel options, nothing else).
 *
 * Needs `python3` with `venv` and pip; where they are missing the test fails saying
 * what to install (on Debian: `apt-get install python3 python3-venv`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createWaiters } from './waiters.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CACHE = join(ROOT, 'node_modules/.cache/herald-python-grpc');
const CLIENT = join(ROOT, 'test/support/grpc_client.py');

/** Pinned, so that the cached environment is the one its hash names. */
const PYTHON_REQUIREMENTS = ['grpcio==1.84.0', 'grpcio-tools==1.84.0', 'protobuf==7.36.2'];

const INSTALL_HINT = 'the Python gRPC interop test needs python3 with venv and pip: on Debian, apt-get install python3 python3-venv';

export interface PythonGrpc {
  /** Starts `grpc_client.py <args>`; its JSON lines are collected. */
  run(args: string[]): PythonClient;
  /** Removes the generated stubs and stops every client still running. */
  close(): Promise<void>;
}

/** One line `grpc_client.py` printed (see its docstring for the events). */
export interface PythonEvent {
  event: 'notification' | 'historyGap' | 'sent' | 'error' | 'end' | 'done' | 'state';
  /** `notification`: the notification's; `sent`: the id Send answered. */
  id?: string;
  text?: string;
  /** `sent` and `error`: which send (0-based). */
  n?: number;
  receivedUsers?: number;
  /** `error` and `end`: the status code's name and details. */
  code?: string;
  details?: string;
  /** `state`: the channel's connectivity state (`READY`, `IDLE`, …). */
  state?: string;
}

export interface PythonClient {
  readonly child: ChildProcess;
  readonly events: PythonEvent[];
  /** Resolves with the first event `match` accepts; fails if the client exits first or after `timeoutMs`. */
  first(match: (event: PythonEvent) => boolean, what: string, timeoutMs: number): Promise<PythonEvent>;
  /** Everything it printed on stderr. */
  stderr(): string;
  readonly exited: Promise<number | string | null>;
}

/** Runs `command`; resolves with its output, rejects naming it and its output. */
function run(command: string, args: string[], cwd = ROOT): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('error', (error: NodeJS.ErrnoException) =>
      reject(new Error(error.code === 'ENOENT' ? `${command} not found: ${INSTALL_HINT}` : `${command}: ${error.message}`)),
    );
    child.once('close', (code) =>
      code === 0 ? resolve(output) : reject(new Error(`${command} ${args.join(' ')} exited with ${String(code)}:\n${output}`)),
    );
  });
}

/**
 * The cached virtual environment's interpreter, made first if it is not there. Made in a
 * directory of its own and renamed into place, so two test processes never share a half-made one.
 */
async function pythonEnvironment(): Promise<string> {
  const version = (await run('python3', ['--version'])).trim();
  const key = createHash('sha256').update(`${version}\n${PYTHON_REQUIREMENTS.join('\n')}`).digest('hex').slice(0, 16);
  const directory = join(CACHE, key);
  const python = join(directory, 'bin/python');
  if (existsSync(join(directory, 'ready'))) return python;
  await mkdir(CACHE, { recursive: true });
  const building = await mkdtemp(join(CACHE, `${key}.building-`));
  try {
    await run('python3', ['-m', 'venv', building]).catch((error: Error) => {
      throw new Error(`${error.message}\n${INSTALL_HINT}`);
    });
    await run(join(building, 'bin/python'), ['-m', 'pip', 'install', '--quiet', ...PYTHON_REQUIREMENTS]).catch((error: Error) => {
      throw new Error(`${error.message}\npip could not install ${PYTHON_REQUIREMENTS.join(' ')}: the test needs PyPI, or an index pip is configured to use`);
    });
    await writeFile(join(building, 'ready'), `${version}\n${PYTHON_REQUIREMENTS.join('\n')}\n`);
    await rename(building, directory).catch(async (error: NodeJS.ErrnoException) => {
      // Another test process made it first.
      if (error.code !== 'ENOTEMPTY' && error.code !== 'EEXIST') throw error;
    });
  } finally {
    await rm(building, { recursive: true, force: true });
  }
  return python;
}

/** The environment (made or reused) and stubs generated from proto/ for this run. */
export async function setUpPythonGrpc(): Promise<PythonGrpc> {
  const python = await pythonEnvironment();
  const stubs = await mkdtemp(join(tmpdir(), 'herald-python-stubs-'));
  await run(python, ['-m', 'grpc_tools.protoc', '-I', 'proto', `--python_out=${stubs}`, `--grpc_python_out=${stubs}`, 'herald/v1/notifications.proto']);
  const clients: PythonClient[] = [];
  return {
    run(args) {
      const child = spawn(python, ['-u', CLIENT, ...args], { env: { ...process.env, PYTHONPATH: stubs }, stdio: ['ignore', 'pipe', 'pipe'] });
      const events: PythonEvent[] = [];
      const waiters = createWaiters();
      let stderr = '';
      let partial = '';
      child.stdout.on('data', (chunk: Buffer) => {
        const lines = (partial + chunk.toString()).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) if (line !== '') events.push(JSON.parse(line) as PythonEvent);
        waiters.wake();
      });
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      let closed = false;
      // `close`, not `exit`: every line it printed has been read by then.
      const exited = new Promise<number | string | null>((resolve) =>
        child.once('close', (code, signal) => {
          closed = true;
          resolve(code ?? signal);
          waiters.wake();
        }),
      );
      const client: PythonClient = {
        child,
        events,
        stderr: () => stderr,
        exited,
        async first(match, what, timeoutMs) {
          const found = await waiters.until(
            () => events.find(match) ?? (closed ? null : undefined),
            what,
            timeoutMs,
            () => `last events ${JSON.stringify(events.slice(-5))}; stderr: ${stderr}`,
          );
          if (found === null) throw new Error(`the Python client exited before ${what}; last events ${JSON.stringify(events.slice(-5))}; stderr: ${stderr}`);
          return found;
        },
      };
      clients.push(client);
      return client;
    },
    async close() {
      for (const { child } of clients.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await rm(stubs, { recursive: true, force: true });
    },
  };
}
