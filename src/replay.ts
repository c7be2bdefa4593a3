/**
 * The operator's dead-letter tool, run beside the workers with their environment
 * (`REDIS_URL`, `REDIS_SENTINELS` or `REDIS_CLUSTER_NODES`, `CHANNEL_PREFIX`):
 *
 *   node dist/replay.js list [--count 20]        dead letters, oldest first, one JSON object a line
 *   node dist/replay.js replay [--count 20]      put the oldest back on the push stream
 *   node dist/replay.js replay --id <id> [...]   put exactly these back
 *
 * A replayed push is sent unless its send marker shows it was sent meanwhile. Each replay
 * is recorded in the notification's ledger (a `replayed` push event), on the same Redis.
 */
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { ConfigError, readConfig, type HeraldConfig } from './config/index.js';
import { createDeadLetters } from './push/dead-letters.js';
import { DETAIL_MAX_LENGTH, type LedgerWriter } from './ledger/events.js';
import { ledgerFor, pushKeysFor } from './push/index.js';
import { createPushQueue } from './push/queue.js';
import { connectRedis, redisLocation } from './redis/connect.js';

const USAGE = 'usage: replay.js list [--count N] | replay [--count N] [--id ID ...]';

export interface ReplayCliOptions {
  /** Where each replay is recorded (flushed before the tool ends). @default the ledger on the same Redis (none with `LEDGER_MAX_EVENTS=0`) */
  ledger?: LedgerWriter;
}

/** Runs the tool; resolves with the exit code. `print` gets each output line. */
export async function runReplayCli(
  argv: readonly string[],
  env: Record<string, string | undefined>,
  print: (line: string) => void,
  options: ReplayCliOptions = {},
): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: { count: { type: 'string', default: '20' }, id: { type: 'string', multiple: true } },
    });
  } catch (error) {
    print(`${error instanceof Error ? error.message : String(error)}\n${USAGE}`);
    return 2;
  }
  const [command] = parsed.positionals;
  const count = Number(parsed.values.count);
  if ((command !== 'list' && command !== 'replay') || !Number.isInteger(count) || count < 1) {
    print(USAGE);
    return 2;
  }
  let config: HeraldConfig;
  try {
    config = readConfig(env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    print(error.message);
    return 2;
  }
  if (redisLocation(config) === undefined) {
    print('REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES must be set, as for the workers');
    return 2;
  }
  const connection = connectRedis(config, { name: 'herald-replay', logger: { warn: () => undefined } });
  const redis = connection.client;
  try {
    await ready(connection.ready(), config.redisCommandTimeoutMs * 5, redisLocation(config) ?? '');
    const keys = pushKeysFor(config);
    const ledger = options.ledger ?? ledgerFor(config, redis, { warn: print });
    const deadLetters = createDeadLetters({ redis, keys, queue: createPushQueue({ redis, keys }) });
    if (command === 'list') {
      for (const letter of await deadLetters.list(count)) print(JSON.stringify(letter));
      return 0;
    }
    const ids = parsed.values.id;
    const replayed = await deadLetters.replay(ids === undefined ? { count } : { ids }, (letter) =>
      ledger.record(letter.notification.tenant, letter.notification.id, {
        type: 'push',
        at: Date.now(),
        status: 'replayed',
        user: letter.user,
        device: letter.deviceId,
        kind: letter.kind,
        detail: letter.reason.slice(0, DETAIL_MAX_LENGTH),
      }),
    );
    await ledger.flush();
    print(`replayed ${replayed} dead letter${replayed === 1 ? '' : 's'}`);
    return 0;
  } catch (error) {
    print(`replay failed: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  } finally {
    await connection.close();
  }
}

/** Resolves once `ready` does, or rejects after `timeoutMs` naming `where`. */
async function ready(ready: Promise<void>, timeoutMs: number, where: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis at ${where} is not reachable after ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([ready, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await runReplayCli(process.argv.slice(2), process.env, (line) => console.log(line));
}
