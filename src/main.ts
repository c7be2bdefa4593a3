/**
 * Herald's command line: `tsx src/main.ts [all|subscribe|publish]`.
 * Reads the environment, starts the servers, prints where they are, stops on SIGINT/SIGTERM.
 */
import { ConfigError, readConfig } from './config/index.js';
import { startHerald, StartupError, type Mode, type RunningHerald } from './herald.js';

const MODES: readonly Mode[] = ['all', 'subscribe', 'publish'];

async function main(): Promise<void> {
  const mode = (process.argv[2] ?? 'all') as Mode;
  if (!MODES.includes(mode)) throw new StartupError(`unknown mode "${mode}": use ${MODES.join(', ')}`);
  const config = readConfig();
  const herald = await startHerald(config, mode);
  printBanner(herald, config.redisUrl, mode);

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    console.info(`herald: ${signal}: stopping`);
    herald.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error('herald: stop failed', error);
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
}

function printBanner(herald: RunningHerald, redisUrl: string | undefined, mode: Mode): void {
  const broker = redisUrl === undefined ? 'in-process broker (no REDIS_URL)' : `Redis at ${redactUrl(redisUrl)}`;
  const lines = [`herald: ${mode === 'all' ? 'subscribe + publish servers' : `${mode} server`} on the ${broker}`];
  if (herald.subscribePort !== undefined) {
    lines.push(`  playground (GraphiQL): http://localhost:${herald.subscribePort}/graphql`);
    lines.push(`  subscribe (WebSocket graphql-transport-ws, SSE): ws://localhost:${herald.subscribePort}/graphql`);
  }
  if (herald.grpcPort !== undefined) lines.push(`  gRPC feed (herald.v1.NotificationFeed): localhost:${herald.grpcPort}`);
  if (herald.publishPort !== undefined) lines.push(`  publish (HTTP POST): http://localhost:${herald.publishPort}/graphql`);
  if (herald.publishGrpcPort !== undefined) lines.push(`  gRPC publish (herald.v1.NotificationPublisher): localhost:${herald.publishGrpcPort}`);
  const dev = herald.devTokens;
  if (dev) {
    lines.push(
      '',
      '  dev mode: JWT_SECRET is unset, so a secret was generated for this run (set JWT_SECRET to keep tokens valid).',
      `  token for user "${dev.user.name}" (tenant ${dev.user.tenant}, stores ${dev.user.stores.join(', ')}) — already in the playground's headers:`,
      `    ${dev.user.token}`,
      `  token for service "${dev.service.name}" (scope notifications:publish):`,
      `    ${dev.service.token}`,
    );
    if (herald.publishPort !== undefined) {
      lines.push(
        '',
        '  send alice a notification:',
        `    curl -s http://localhost:${herald.publishPort}/graphql -H 'Content-Type: application/json' \\`,
        `      -H 'Authorization: Bearer ${dev.service.token}' \\`,
        `      -d '{"query":"mutation { sendNotification(to: \\"alice\\", text: \\"hi\\") { receivedUsers } }"}'`,
      );
    }
  }
  console.info(lines.join('\n'));
}

function redactUrl(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString();
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError || error instanceof StartupError) {
    console.error(`herald: ${error.message}`);
  } else {
    console.error('herald: failed to start', error);
  }
  process.exit(1);
});
