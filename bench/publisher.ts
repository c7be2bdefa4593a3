/**
 * The publishing driver, a process of its own (forked with IPC by bench/run.ts): none of
 * the measured systems publishes for itself, and the driver's own work never shares an
 * event loop with the load clients or with bench/run.ts' bookkeeping.
 *
 * Two ways to send, over kept-alive HTTP connections (`node:http`):
 * - **open loop** (`ratePerSecond`): send n is *scheduled* at `start + n / rate` and goes
 *   out at that time whether or not earlier ones were answered. Its text is the scheduled
 *   time, so a client's latency (arrival − text) includes any time the send waited for a
 *   free connection or for a slow server: a system that falls behind is charged for it
 *   (no coordinated omission);
 * - **closed loop** (`concurrency`): that many sends in flight, the next one as soon as
 *   one is answered: capacity. The text is the time the send went out.
 */
import { appendFileSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';

export interface SendCommand {
  cmd: 'send';
  url: string;
  token: string;
  /** A mutation with `$to` and `$text`. */
  query: string;
  /** Who each send goes to, in order; repeated from the start when `seconds` is set. */
  targets: string[];
  /**
   * The token of each target, beside `targets` (a service token of that user's tenant), for
   * sends to several tenants in one run (bench/cluster.ts); unset: `token` for every send.
   */
  tokens?: string[];
  /** Open loop at this many sends per second. */
  ratePerSecond?: number;
  /** Closed loop with this many in flight. */
  concurrency?: number;
  /** Closed loop only: stop after this long instead of after `targets`. */
  seconds?: number;
  /** Names the round in `BENCH_LATENCY_DIR`'s record (the system's name). */
  label?: string;
}

export interface SendReport {
  /** Sends answered without errors. */
  accepted: number;
  /** Sends answered with errors, or not answered. */
  failed: number;
  /** From the first send to the last answer. */
  elapsedMs: number;
  /** How late, at most, an open-loop send went out after its scheduled time. */
  maxStartLagMs: number;
  firstError: string | undefined;
}

const now = (): number => performance.timeOrigin + performance.now();
/**
 * `BENCH_LATENCY_DIR`: where each open-loop round is recorded for `bench/tail.ts`, in
 * `driver.txt`: a line `round <label> <first scheduled ms> <last scheduled ms>`, then
 * `<scheduled ms> <lag ms>` for each send that went out more than {@link RECORDED_LAG_MS}
 * after its time (the load clients record the deliveries beside it).
 */
const LATENCY_DIR = process.env['BENCH_LATENCY_DIR'];
const RECORDED_LAG_MS = 1;
/**
 * Enough sockets that an open-loop rate never waits on the agent while the server keeps
 * up; when it does not keep up, sends queue here and their latency counts from the
 * scheduled time all the same.
 */
// With a timeout of its own, Node's agent also follows a server's `Keep-Alive: timeout=5`
// hint and drops a free socket a second before that server would close it. Without one it
// ignores the hint: after a burst, 256 sockets idle for the server's 5 s are reused just
// as the server closes them, and a send's one retry lands on another that is closing.
const agent = new Agent({ keepAlive: true, maxSockets: 256, timeout: 60_000 });

/** POSTs `body` to `url` with `token`; rejects unless the answer is a 200 without errors (bench/mutation-cpu.ts sends with it too). */
export function post(url: string, token: string, body: string, retried = false): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      url,
      {
        method: 'POST',
        agent,
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), Authorization: `Bearer ${token}` },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.once('end', () => {
          const text = Buffer.concat(chunks).toString();
          if (response.statusCode !== 200 || text.includes('"errors"')) reject(new Error(`HTTP ${response.statusCode}: ${text.slice(0, 300)}`));
          else resolve();
        });
        response.once('error', reject);
      },
    );
    request.once('error', (error: NodeJS.ErrnoException) => {
      // A kept-alive connection the server closed just as it was reused: send again, once
      // (what Node's docs advise for an agent with keepAlive).
      if (request.reusedSocket && error.code === 'ECONNRESET' && !retried) {
        post(url, token, body, true).then(resolve, reject);
        return;
      }
      reject(error);
    });
    request.end(body);
  });
}

async function send(command: SendCommand): Promise<SendReport> {
  let accepted = 0;
  let failed = 0;
  let firstError: string | undefined;
  const one = async (index: number, text: string): Promise<void> => {
    const to = command.targets[index] as string;
    try {
      await post(command.url, command.tokens?.[index] ?? command.token, JSON.stringify({ query: command.query, variables: { to, text } }));
      accepted += 1;
    } catch (error) {
      failed += 1;
      firstError ??= String(error);
    }
  };
  const started = now();
  let maxStartLagMs = 0;
  if (command.ratePerSecond !== undefined) {
    const interval = 1000 / command.ratePerSecond;
    const lags = LATENCY_DIR === undefined ? undefined : [`round ${command.label ?? command.url} ${started.toFixed(2)} ${(started + (command.targets.length - 1) * interval).toFixed(2)}`];
    const inFlight: Array<Promise<void>> = [];
    let next = 0;
    await new Promise<void>((resolve) => {
      const tick = (): void => {
        const at = now();
        // Every send whose time has come goes now, each with its own scheduled time.
        for (; next < command.targets.length && started + next * interval <= at; next++) {
          const lag = at - (started + next * interval);
          maxStartLagMs = Math.max(maxStartLagMs, lag);
          if (lags !== undefined && lag > RECORDED_LAG_MS) lags.push(`${(started + next * interval).toFixed(2)} ${lag.toFixed(2)}`);
          inFlight.push(one(next, String(started + next * interval)));
        }
        if (next >= command.targets.length) return resolve();
        // setTimeout's 1 ms grain is fine: a send that is late by it still counts from its time.
        setTimeout(tick, Math.max(0, started + next * interval - now()));
      };
      tick();
    });
    await Promise.all(inFlight);
    if (lags !== undefined) appendFileSync(`${LATENCY_DIR}/driver.txt`, `${lags.join('\n')}\n`);
  } else {
    const until = command.seconds === undefined ? Infinity : started + command.seconds * 1000;
    let next = 0;
    const more = () => (command.seconds === undefined ? next < command.targets.length : now() < until);
    await Promise.all(
      Array.from({ length: command.concurrency ?? 1 }, async () => {
        while (more()) {
          await one(next++ % command.targets.length, String(now()));
        }
      }),
    );
  }
  return { accepted, failed, elapsedMs: now() - started, maxStartLagMs, firstError };
}

process.on('message', (message: SendCommand) => {
  send(message).then(
    (report) => process.send?.({ report }),
    (error: unknown) => process.send?.({ error: String(error) }),
  );
});
