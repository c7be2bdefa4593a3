/**
 * Herald deployed for push on a Redis topology (one node, Sentinel, Cluster), in-process
 * the way `main.ts` starts it: a subscribe server, two publish servers — one with
 * `REDIS_MIN_REPLICAS_ACKED=1`, whose acknowledged notifications a failover must not lose,
 * and one without, which still publishes once the promoted master has no replica left —
 * and a push worker (`main.ts push`), all on the same Redis settings. Webhooks go to a
 * local recorder at `/<tenant>/<user>`.
 */
import { readConfig } from '../../src/config/index.js';
import { startHerald, type RunningHerald } from '../../src/servers/herald.js';
import { errorCode, postGraphQL } from './http.js';
import { LOCAL_NETWORKS, startHttpRecorder, type HttpRecorder } from './push-servers.js';
import { serviceToken, TEST_SECRET, userToken } from './tokens.js';

const WEBHOOK_SECRET = `whsec_${Buffer.alloc(32, 9).toString('base64')}`;

const REGISTER = `mutation Register($device: DeviceInput!) { registerDevice(device: $device) { id } }`;
const FOLLOW = 'mutation Follow($topic: String!) { follow(topic: $topic) }';
const SEND = `mutation Send($to: String!, $text: String!, $audience: Audience, $push: PushPolicy) {
  sendNotification(to: $to, text: $text, audience: $audience, push: $push) { id }
}`;

/** What one send was answered. */
export interface SendOutcome {
  readonly text: string;
  /** The notification's id when the mutation succeeded. */
  readonly id: string | undefined;
  readonly code: string | undefined;
  readonly message: string | undefined;
}

export interface PushDeployment {
  readonly hooks: HttpRecorder;
  /** The subscribe server's WebSocket URL. */
  readonly wsUrl: string;
  readonly worker: RunningHerald;
  /** Warnings and errors the processes logged, for a failure's message. */
  readonly logged: string[];
  /** Registers a webhook at `/<tenant>/<user>` for `user`, with the user's own token. */
  register(tenant: string, user: string): Promise<void>;
  follow(tenant: string, user: string, topic: string): Promise<void>;
  /**
   * Sends with push `ALWAYS` (or `push`) through the publish server that waits for a
   * replica (`replicated`, the default) or the one that does not.
   */
  send(tenant: string, to: string, text: string, options?: { audience?: 'USER' | 'TOPIC'; replicated?: boolean; push?: 'ALWAYS' | 'WHEN_OFFLINE' | 'NEVER' }): Promise<SendOutcome>;
  /** The notification ids pushed to `/<tenant>/<user>` so far, in arrival order. */
  pushed(tenant: string, user: string): string[];
  stop(): Promise<void>;
}

export async function startPushDeployment(redisEnv: Record<string, string>): Promise<PushDeployment> {
  const hooks = await startHttpRecorder();
  hooks.answer = () => ({ status: 204 });
  const logged: string[] = [];
  const note =
    (level: string) =>
    (...args: unknown[]): void =>
      void logged.push(`${level} ${args.map(String).join(' ')}`);
  const logger = { info: () => undefined, warn: note('warn'), error: note('error') };
  const configOf = (extra: Record<string, string> = {}) => {
    const config = readConfig({
      ...redisEnv,
      REDIS_COMMAND_TIMEOUT_MS: '1000',
      JWT_SECRET: TEST_SECRET,
      HOST: '127.0.0.1',
      SUBSCRIBE_PORT: '0',
      PUBLISH_PORT: '0',
      GRPC_PORT: '0',
      PUBLISH_GRPC_PORT: '0',
      PUSH_WEBHOOK_SECRET: WEBHOOK_SECRET,
      // Long enough for a live delivery's seen-live mark to be written first.
      PUSH_OFFLINE_GRACE_MS: '500',
      PUSH_SEND_TIMEOUT_MS: '2000',
      PUSH_CLAIM_IDLE_MS: '3000',
      PUSH_RETRY_WINDOW_MS: '1000',
      PUSH_RETRY_POLL_MS: '50',
      PUSH_ALLOWED_NETWORKS: LOCAL_NETWORKS, // the recorder listens on 127.0.0.1
      ...extra,
    });
    // Sent for real without NODE_ENV=production, which refuses http:// webhooks.
    return { ...config, push: { ...config.push, dryRun: false } };
  };
  const started: RunningHerald[] = [];
  try {
    const start = async (mode: 'subscribe' | 'publish' | 'push', extra?: Record<string, string>): Promise<RunningHerald> => {
      const herald = await startHerald(configOf(extra), mode, logger);
      started.push(herald);
      return herald;
    };
    const [subscribe, replicatedPublish, publish, worker] = await Promise.all([
      start('subscribe'),
      start('publish', { REDIS_MIN_REPLICAS_ACKED: '1' }),
      start('publish'),
      start('push'),
    ]);
    const subscribeUrl = `http://127.0.0.1:${subscribe.subscribePort}/graphql`;
    const publishUrls = { replicated: `http://127.0.0.1:${replicatedPublish.publishPort}/graphql`, unreplicated: `http://127.0.0.1:${publish.publishPort}/graphql` };
    const mutate = async (query: string, token: string, variables: Record<string, unknown>): Promise<void> => {
      const response = await postGraphQL(subscribeUrl, query, { token, variables });
      if (response.body.errors !== undefined) throw new Error(`${query.split('(')[0]}: ${JSON.stringify(response.body.errors)}`);
    };
    return {
      hooks,
      wsUrl: `ws://127.0.0.1:${subscribe.subscribePort}/graphql`,
      worker,
      logged,
      register: (tenant, user) => mutate(REGISTER, userToken(user, { tenant }), { device: { kind: 'WEBHOOK', url: `${hooks.url}/${tenant}/${user}` } }),
      follow: (tenant, user, topic) => mutate(FOLLOW, userToken(user, { tenant }), { topic }),
      async send(tenant, to, text, options = {}) {
        const url = options.replicated === false ? publishUrls.unreplicated : publishUrls.replicated;
        const variables = { to, text, audience: options.audience ?? 'USER', push: options.push ?? 'ALWAYS' };
        const response = await postGraphQL(url, SEND, { token: serviceToken({ tenant }), variables }).catch((error: unknown) => error as Error);
        if (response instanceof Error) return { text, id: undefined, code: 'NO_RESPONSE', message: response.message };
        const id = (response.body.data?.['sendNotification'] as { id: string } | null | undefined)?.id;
        return { text, id, code: errorCode(response), message: response.body.errors?.[0]?.message };
      },
      pushed: (tenant, user) =>
        hooks.requests.filter((request) => request.path === `/${tenant}/${user}`).map((request) => String((JSON.parse(request.body.toString('utf8')) as { id: unknown }).id)),
      async stop() {
        await Promise.all(started.map((herald) => herald.stop()));
        await hooks.close();
      },
    };
  } catch (error) {
    await Promise.all(started.map((herald) => herald.stop()));
    await hooks.close();
    throw error;
  }
}
