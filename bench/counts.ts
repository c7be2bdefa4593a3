/**
 * Deterministic counts per notification, for `BENCH_COUNT=1 npm run bench`:
 * CPU time varies with whoever else uses the machine, a count of system calls, context
 * switches and Redis commands does not.
 *
 * - system calls by kind and context switches of each server process (all its threads),
 *   from `perf stat` on the kernel's syscall tracepoints: no ptrace, so the process runs
 *   at its own pace and batches as it would unobserved (strace -c slows every call, and a
 *   slowed process coalesces more and makes fewer);
 * - Redis commands by name, from `INFO commandstats` before and after (the run's Redis
 *   serves only the system being measured).
 *
 * Each is divided by the notifications of the round.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createConnection } from 'node:net';

/** The system calls counted one by one; `raw_syscalls:sys_enter` counts them all. */
const SYSCALLS = ['read', 'write', 'writev', 'readv', 'recvfrom', 'sendto', 'sendmsg', 'epoll_wait', 'epoll_pwait', 'epoll_ctl', 'futex', 'mmap', 'munmap', 'madvise', 'mprotect', 'getrandom'];
const EVENTS = ['raw_syscalls:sys_enter', 'context-switches', ...SYSCALLS.map((name) => `syscalls:sys_enter_${name}`)];

export interface Counted {
  /** Per process (its label): event name → count. */
  readonly processes: Record<string, Record<string, number>>;
  /** Redis command name → calls. */
  readonly redis: Record<string, number>;
}

/** `INFO commandstats` of the Redis at `port`: command → calls. */
export async function redisCommandCalls(port: number): Promise<Record<string, number>> {
  const text = await new Promise<string>((resolve, reject) => {
    const socket = createConnection(port, '127.0.0.1');
    let reply = '';
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      // A bulk string: `$<length>\r\n<body>\r\n`.
      const header = /^\$(\d+)\r\n/.exec(reply);
      if (header && reply.length >= header[0].length + Number(header[1]) + 2) {
        socket.end();
        resolve(reply.slice(header[0].length, header[0].length + Number(header[1])));
      }
    });
    socket.once('error', reject);
    socket.write('INFO commandstats\r\n');
  });
  const calls: Record<string, number> = {};
  for (const match of text.matchAll(/^cmdstat_([\w|-]+):calls=(\d+)/gm)) calls[match[1] as string] = Number(match[2]);
  return calls;
}

/** Starts counting `processes` (label → pid) and Redis; the function returned stops and reads every count. */
export async function startCounting(processes: Record<string, number>, redisPort: number): Promise<() => Promise<Counted>> {
  const redisBefore = await redisCommandCalls(redisPort);
  const perfs = Object.entries(processes).map(([label, pid]): [string, ChildProcess, Promise<string>] => {
    const perf = spawn('perf', ['stat', '-x', ',', '-e', EVENTS.join(','), '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
    const output = new Promise<string>((resolve) => {
      let text = '';
      perf.stderr?.on('data', (chunk: Buffer) => (text += chunk.toString()));
      perf.once('close', () => resolve(text));
    });
    return [label, perf, output];
  });
  // perf attaches in a few ms; give it a moment before the load starts.
  await new Promise((resolve) => setTimeout(resolve, 300));
  return async () => {
    const counted: Record<string, Record<string, number>> = {};
    for (const [label, perf, output] of perfs) {
      perf.kill('SIGINT');
      const counts: Record<string, number> = {};
      for (const line of (await output).split('\n')) {
        const [value, , event] = line.split(',');
        if (event === undefined || value === undefined || !/^\d+$/.test(value)) continue;
        counts[event.replace(/^syscalls:sys_enter_/, '').replace(/^raw_syscalls:sys_enter$/, 'all syscalls')] = Number(value);
      }
      counted[label] = counts;
    }
    const redisAfter = await redisCommandCalls(redisPort);
    const redis: Record<string, number> = {};
    for (const [command, calls] of Object.entries(redisAfter)) {
      const delta = calls - (redisBefore[command] ?? 0);
      if (delta > 0 && command !== 'info') redis[command] = delta;
    }
    return { processes: counted, redis };
  };
}

/** `counted`, per notification, as lines of text. */
export function describeCounts(system: string, counted: Counted, notifications: number): string {
  const per = (n: number) => (n / notifications).toFixed(2);
  const lines = Object.entries(counted.processes).map(
    ([label, counts]) =>
      `bench:   ${system} ${label} per notification: ` +
      Object.entries(counts)
        .filter(([, n]) => n > 0)
        .map(([event, n]) => `${event} ${per(n)}`)
        .join(', '),
  );
  lines.push(
    `bench:   ${system} redis commands per notification: ` +
      Object.entries(counted.redis)
        .map(([command, n]) => `${command} ${per(n)}`)
        .join(', '),
  );
  return lines.join('\n');
}
