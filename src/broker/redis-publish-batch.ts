/**
 * The publishes of one turn of the event loop, as one call of the publish script.
 *
 * At capacity many mutations arrive in one turn (32 in flight: every request whose bytes
 * came in one poll). Each used to be its own `EVALSHA`: its own ioredis command, reply and
 * promise in the publish server, its own script call in Redis. Here the publishes of a
 * turn are gathered and sent once the turn's I/O is done (`setImmediate`): one script call
 * for up to {@link PublishBatchOptions.maxPerCall} of them — on a Cluster one per tenant,
 * whose keys share a slot. The script publishes them in order, each as one call once did,
 * and returns each one's outcome: one that fails fails alone. A call that fails as a whole
 * (the connection lost, no reply in time) fails every publish in it, each as its caller's
 * own command would have.
 *
 * With `minReplicasAcked`, one `WAIT` follows each call and its answer is every
 * publish's of the call.
 */
import { ReplyError, type Cluster, type Redis } from 'ioredis';
import type { Retention } from '../config/index.js';
import { OutcomeUnknownError } from '../common/failures.js';
import type { PublishCommand, PublishReply } from './redis-scripts.js';

export interface PublishBatchOptions {
  /** The client that runs the script (`defineScripts` was called on it). */
  publisher: Redis | Cluster;
  /** On a Cluster: the publishes of one tenant (one slot) share a call, no others. */
  sharded: boolean;
  publishCommand: PublishCommand;
  retention: Retention;
  /** See `RedisBrokerOptions.minReplicasAcked`. */
  minReplicasAcked: number;
  /** See `RedisBrokerOptions.waitTimeoutMs`. */
  waitTimeoutMs: number;
  /** A candidate epoch no call made before: the call's receipt too. */
  candidate(): string;
  /** Told the connection was out of step with its replies (`redis/liveness.ts` replaces it). */
  outOfStep(connection: Redis): void;
  /** Most publishes in one script call (Redis runs nothing else meanwhile). @default 64 */
  maxPerCall?: number;
}

/** One publish, as the script takes it. */
export interface PublishArgs {
  readonly tenantKey: string;
  readonly stream: string;
  /** The idempotency key, or the tenant key when there is none. */
  readonly idempotencyKey: string;
  /** The push stream the script writes the entry to, or the tenant key when it writes none. */
  readonly pushStream: string;
  readonly channel: string;
  /** `<report channel>\n<sequence>` */
  readonly frameHead: string;
  readonly payload: string;
  /** The idempotency window in ms, '' when there is none. */
  readonly windowMs: number | '';
  /** The ledger's key prefix, '' for none. */
  readonly ledgerPrefix: string;
  /** The accepted event's JSON, '' for none. */
  readonly acceptedEvent: string;
  readonly pushWhen: '' | 'always' | 'unheard';
  readonly pushHead: string;
  readonly pushTail: string;
  readonly pushMaxLength: number | '';
}

/** What the script did with one publish. */
export interface Published {
  /** The notification's id; for a repeated idempotency key, what the first publish remembered. */
  readonly id: string;
  /** Subscribe-server connections the message reached; -1 for a repeated idempotency key. */
  readonly receivers: number;
  /** Whether the script wrote the push entry. */
  readonly pushQueued: boolean;
  /** With `minReplicasAcked`: resolves with the failure when fewer replicas acknowledged the call. */
  readonly replicas: Promise<OutcomeUnknownError | undefined> | undefined;
}

interface Pending {
  readonly args: PublishArgs;
  resolve(published: Published): void;
  reject(error: unknown): void;
}

/** Replies with which a Cluster refused a command it did not run, and that a retry can get past. */
const REDIRECTION = /^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN)\b/;
/** ioredis' own limit (`maxRedirections`). */
const MAX_REDIRECTIONS = 16;
/** ioredis' own delay before a TRYAGAIN or CLUSTERDOWN retry (`retryDelayOnTryAgain`). */
const REDIRECTION_RETRY_MS = 100;

/** Returns `publish`: resolves when the script has run it, with what it did. */
export function createPublishBatch(options: PublishBatchOptions): (args: PublishArgs) => Promise<Published> {
  const { publisher, sharded, publishCommand, retention, minReplicasAcked, waitTimeoutMs } = options;
  const maxPerCall = options.maxPerCall ?? 64;

  /** Why a stored publish may not survive a failover: the replicas did not acknowledge it. */
  const unreplicated = (why: string): OutcomeUnknownError =>
    new OutcomeUnknownError(`Redis stored the notification but ${why}: it may not survive a failover; retry with the same idempotencyKey to be sure`);
  const replicaOutcome = (acked: number): OutcomeUnknownError | undefined =>
    acked < minReplicasAcked ? unreplicated(`only ${acked} of ${minReplicasAcked} replicas acknowledged it within ${waitTimeoutMs} ms`) : undefined;
  const waitFailed = (error: unknown): OutcomeUnknownError => unreplicated(`did not answer the WAIT for replicas (${String(error)})`);

  /**
   * The script and `WAIT` in one pipeline (on a Cluster, so that WAIT reaches the master
   * that ran the script). ioredis follows a Cluster's redirections for a single command,
   * but not for a pipeline in which WAIT (not a read) succeeded, so it is done here: while
   * the script was refused without running — its slot moved (MOVED: the slot map is read
   * again first), is moving (ASK, TRYAGAIN) or has no master yet (CLUSTERDOWN) — the
   * pipeline is sent again, up to {@link MAX_REDIRECTIONS} times.
   */
  const runAndWait = async (keysThenArgs: Array<string | number>, keyCount: number): Promise<Array<[Error | null, unknown]>> => {
    for (let attempt = 1; ; attempt++) {
      const replies = (await publisher.pipeline().heraldPublish(keyCount, ...keysThenArgs).wait(minReplicasAcked, waitTimeoutMs).exec()) ?? [];
      const refusal = replies[0]?.[0]?.message;
      if (attempt >= MAX_REDIRECTIONS || refusal === undefined || !REDIRECTION.test(refusal)) return replies;
      if (refusal.startsWith('MOVED')) await new Promise((resolve) => (publisher as Cluster).refreshSlotsCache(() => resolve(undefined)));
      else await new Promise((resolve) => setTimeout(resolve, REDIRECTION_RETRY_MS));
    }
  };

  /**
   * The replies of a call, once its receipt (the call's own candidate) shows they answer
   * this call. Another receipt means the connection is out of step — bytes were lost
   * between Herald and Redis, and this reply belongs to an earlier command that Redis
   * never answered: the connection is replaced (every command waiting on it fails as
   * unknown) and this call was not carried out as asked.
   */
  const receipted = (reply: PublishReply, candidate: string, connection: Redis | undefined): PublishReply[1] => {
    if (Array.isArray(reply) && reply[0] === candidate && Array.isArray(reply[1])) return reply[1];
    if (connection) options.outOfStep(connection);
    throw new OutcomeUnknownError('Redis answered the publish out of step with its request: it may or may not have been carried out');
  };

  const call = async (batch: readonly Pending[]): Promise<void> => {
    const candidate = options.candidate();
    const keys: string[] = [];
    const args: Array<string | number> = [candidate, retention.maxLength, retention.maxAgeMs, publishCommand, retention.ledgerMaxAgeMs ?? retention.maxAgeMs];
    for (const { args: one } of batch) {
      keys.push(one.tenantKey, one.stream, one.idempotencyKey, one.pushStream);
      args.push(one.channel, one.frameHead, one.payload, one.windowMs, one.ledgerPrefix, one.acceptedEvent, one.pushWhen, one.pushHead, one.pushTail, one.pushMaxLength);
    }
    let replies: PublishReply[1];
    let replicas: Promise<OutcomeUnknownError | undefined> | undefined;
    try {
      if (minReplicasAcked === 0 || !sharded) {
        replies = receipted(await publisher.heraldPublish(keys.length, ...keys, ...args), candidate, publisher as Redis);
        // One node: WAIT on the same connection after the reply, while the reports arrive.
        replicas = minReplicasAcked === 0 ? undefined : (publisher as Redis).wait(minReplicasAcked, waitTimeoutMs).then(replicaOutcome, waitFailed);
      } else {
        const [[scriptError, published] = [], [waitError, acked] = []] = await runAndWait([...keys, ...args], keys.length);
        if (scriptError || !published) throw scriptError ?? new Error('no reply to the publish script');
        replies = receipted(published as PublishReply, candidate, undefined);
        replicas = Promise.resolve(waitError ? waitFailed(waitError) : replicaOutcome(Number(acked)));
      }
    } catch (error) {
      for (const pending of batch) pending.reject(error);
      return;
    }
    batch.forEach((pending, n) => {
      const [id = '', receivers = -2, pushed = 0] = replies[n] ?? [];
      if (receivers === -2) pending.reject(new ReplyError(typeof pushed === 'string' ? pushed : 'the publish script gave no reply for this notification'));
      else pending.resolve({ id, receivers, pushQueued: pushed === 1, replicas });
    });
  };

  /** The publishes of this turn, by group (a Cluster's tenant; one group on one node). */
  let turn: Map<string, Pending[]> | undefined;
  const flush = (): void => {
    const groups = turn ?? new Map<string, Pending[]>();
    turn = undefined;
    for (const pending of groups.values()) {
      for (let start = 0; start < pending.length; start += maxPerCall) void call(pending.slice(start, start + maxPerCall));
    }
  };

  return (args) =>
    new Promise<Published>((resolve, reject) => {
      if (turn === undefined) {
        turn = new Map();
        // After this turn's I/O callbacks: every publish whose request arrived in this poll.
        setImmediate(flush);
      }
      const group = sharded ? args.tenantKey : '';
      const pending = turn.get(group);
      if (pending === undefined) turn.set(group, [{ args, resolve, reject }]);
      else pending.push({ args, resolve, reject });
    });
}
