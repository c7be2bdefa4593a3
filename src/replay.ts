/**
 * The operator's dead-letter tool, run beside the workers with their environment
 * (`REDIS_URL`, `CHANNEL_PREFIX`):
 *
 *   node dist/replay.js list [--count 20]        dead letters, oldest first, one JSON object a line
 *   node dist/replay.js replay [--count 20]      put the oldest back on the push stream
 *   node dist/replay.js replay --id <id> [...]   put exactly these back
 *
 * A replayed push is sent unless its send marker shows it was sent meanwhile.
 */
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { isValidName } from './names/index.js';
import { createDeadLetters } from './push/dead-letters.js';
import { createPushKeys } from './push/keys.js';
import { createPushQueue } from './push/queue.js';

const USAGE = 'usage: replay.js list [--count N] | replay [--count N] [--id ID ...]';

/** Runs the tool; resolves with the exit code. `print` gets each output line. */
export async function runReplayCli(
  argv: readonly string[],
  env: Record<string, string | undefined>,
  print: (line: string) => void,
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
  const url = env['REDIS_URL'];
  const prefix = env['CHANNEL_PREFIX']?.trim() || 'herald';
  if (url === undefined || !isValidName(prefix)) {
    print('REDIS_URL must be set (and CHANNEL_PREFIX, if set, valid), as for the servers');
    return 2;
  }
  const redis = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true });
  try {
    await redis.connect();
    const keys = createPushKeys(prefix);
    const deadLetters = createDeadLetters({ redis, keys, queue: createPushQueue({ redis, keys }) });
    if (command === 'list') {
      for (const letter of await deadLetters.list(count)) print(JSON.stringify(letter));
      return 0;
    }
    const ids = parsed.values.id;
    const replayed = await deadLetters.replay(ids === undefined ? { count } : { ids });
    print(`replayed ${replayed} dead letter${replayed === 1 ? '' : 's'}`);
    return 0;
  } catch (error) {
    print(`replay failed: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  } finally {
    redis.disconnect();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await runReplayCli(process.argv.slice(2), process.env, (line) => console.log(line));
}
