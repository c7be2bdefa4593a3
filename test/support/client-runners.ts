/**
 * Child processes full of `@herald/client` clients (test/support/client-runner.ts), so a
 * test can run hundreds of clients beside the servers without one process's event loop
 * timing them all. Each is killed by {@link stopAllClientRunners}.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const runners: ChildProcess[] = [];

export interface RunnerConfig {
  /** The subscribe server's `ws://…/graphql`. */
  url: string;
  /** One client per entry, as that user. */
  users: string[];
  /** Each minted token's lifetime, in seconds. */
  tokenSeconds: number;
}

export interface RunnerReport {
  /** Per client: its user, the ids its `onNotification` got (in order), session errors, whether live now. */
  clients: { user: string; ids: string[]; errors: string[]; live: boolean }[];
}

export interface ClientRunner {
  /** Every client's state now. */
  report(): Promise<RunnerReport>;
  close(): Promise<void>;
}

export function startClientRunner(config: RunnerConfig): ClientRunner {
  const child = fork(fileURLToPath(new URL('./client-runner.ts', import.meta.url)), [], {
    cwd: ROOT,
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, HERALD_CLIENT_RUNNER: JSON.stringify(config) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  runners.push(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    report: () =>
      new Promise((resolve, reject) => {
        if (!child.connected) return reject(new Error('the client runner has exited'));
        child.once('message', (message) => resolve(message as RunnerReport));
        child.send('report');
      }),
    async close() {
      if (child.connected) child.send('close');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Kills every runner still running (call in `afterAll`). */
export function stopAllClientRunners(): void {
  for (const child of runners.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}
