/**
 * Talking to the bench's helper processes — the load clients (`load-client.ts`) and the
 * publishing driver (`publisher.ts`) — over IPC: how each is forked and asked. Shared by
 * `run.ts`, `cluster.ts` and `heap-per-connection.ts`.
 */
import { fork, type ChildProcess } from 'node:child_process';
import type { ClientCommand } from './load-client.js';
import type { SendCommand, SendReport } from './publisher.js';

/** Forks `file` (beside this module) under tsx, with IPC. */
export function forkHelper(file: 'load-client.ts' | 'publisher.ts'): ChildProcess {
  return fork(new URL(file, import.meta.url).pathname, [], { execArgv: ['--import', 'tsx'] });
}

/** Sends `command` to a load client and resolves with its answer's `key` field (rejects on its `error`). */
export function ask<T>(client: ChildProcess, command: ClientCommand, key: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: Record<string, unknown>) => {
      if ('error' in message) return reject(new Error(String(message['error'])));
      if (!(key in message)) return;
      client.off('message', onMessage);
      resolve(message[key] as T);
    };
    client.on('message', onMessage);
    client.send(command);
  });
}

/** Sends through the driver and waits for its report; a send refused by the server fails the run. */
export function drive(driver: ChildProcess, command: Omit<SendCommand, 'cmd'>): Promise<SendReport> {
  return new Promise((resolve, reject) => {
    driver.once('message', (message: { report?: SendReport; error?: string }) => {
      if (message.report === undefined) return reject(new Error(`publisher: ${message.error ?? 'no report'}`));
      if (message.report.failed > 0) return reject(new Error(`publisher: ${message.report.failed} sends failed: ${message.report.firstError ?? ''}`));
      resolve(message.report);
    });
    driver.send({ cmd: 'send', ...command } satisfies SendCommand);
  });
}
