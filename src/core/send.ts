/**
 * Sending a notification, free of any transport: checks the publisher and the input,
 * builds the audience's destination inside the publisher's own tenant and publishes.
 * The GraphQL mutation and the gRPC `Send` both call it.
 */
import { authorizePublish, type Principal } from '../auth/index.js';
import type { Broker, PublishRequest, PublishResult } from '../broker/types.js';
import type { Namer } from '../names/index.js';
import { Failure, InvalidInputError } from '../common/failures.js';
import { assertValidName } from '../names/index.js';
import { AUDIENCES, isAudience, isPushedAudience, type PushedAudience } from '../common/audiences.js';
import { encodeNotification } from '../common/notification.js';
import type { HeraldMetrics } from '../common/metrics.js';
import { PUSH_POLICIES, type PushNotification, type PushPolicy } from '../push/entry.js';
import { hasPushOptions, parsePushOptions, type PushOptions } from '../push/options.js';
import type { PushQueue } from '../push/queue.js';
import type { LedgerKeys } from '../ledger/keys.js';

export interface SenderOptions {
  broker: Broker;
  namer: Namer;
  /** Longest `text` accepted, in characters (`MAX_TEXT_LENGTH`). */
  maxTextLength: number;
  /** How long an `idempotencyKey` is remembered, in ms (`IDEMPOTENCY_WINDOW_SECONDS`). */
  idempotencyWindowMs: number;
  /**
   * Where notifications to a `USER` or a `TOPIC` that may need a push are queued for the
   * push worker (one XADD each, before the publish is answered; none for a `WHEN_OFFLINE`
   * notification whose count shows it reached its user live). On one node the publish
   * script writes it (`PushQueue.scripted`). Without it (the
   * in-process broker: no Redis), nothing is pushed.
   * @default none
   */
  pushQueue?: PushQueue | undefined;
  /**
   * The ledger's keys: each publish starts its notification's ledger with the accepted
   * event, inside the publish itself (`PublishRequest.ledger`). @default none: the ledger is off
   */
  ledgerKeys?: LedgerKeys | undefined;
}

/** One notification to send, as it arrives from a client (checked here). */
export interface SendRequest {
  readonly to: unknown;
  readonly text: unknown;
  /** @default 'USER' */
  readonly audience?: unknown;
  readonly idempotencyKey?: unknown;
  /** `ALWAYS`, `NEVER` or `WHEN_OFFLINE`. @default 'WHEN_OFFLINE' */
  readonly push?: unknown;
  /** Pushes with the same key replace each other (`../push/options.ts`). @default none */
  readonly collapseKey?: unknown;
  /** How long a provider keeps the push for an offline device, in seconds. @default the provider's */
  readonly ttl?: unknown;
  /** `HIGH` or `NORMAL`. @default the provider's */
  readonly priority?: unknown;
  /** What kind of notification it is, for users' preferences; a name like a topic. @default none (never muted) */
  readonly category?: unknown;
  /** Whether it ignores preferences and quiet hours. @default false */
  readonly critical?: unknown;
}

/** What a notification says of itself for preferences, checked; each absent when not set. */
export interface Classification {
  readonly category?: string;
  readonly critical?: true;
}

/** Checks `category` (a name, like a topic) and `critical`; errors name the field. */
export function parseClassification(request: Pick<SendRequest, 'category' | 'critical'>): Classification {
  const { category, critical } = request;
  if (category != null) assertValidName('category', category);
  if (critical != null && typeof critical !== 'boolean') throw new InvalidInputError('critical must be a boolean');
  return { ...(typeof category === 'string' ? { category } : {}), ...(critical === true ? { critical: true as const } : {}) };
}

export interface SendOptions {
  /** See `PublishRequest.countDeliveries`. @default true */
  readonly countDeliveries?: boolean;
}

/** Most notifications one batch may carry. */
const MAX_BATCH_SIZE = 1000;

export interface Sender {
  /** Sends one notification; throws a typed error (auth, input, broker) naming what was wrong. */
  send(principal: Principal, request: SendRequest, options?: SendOptions): Promise<PublishResult>;
  /**
   * Checks every notification first (nothing is sent if one is bad), then sends them all
   * at once: the publishes are pipelined on one Redis connection, so they keep their order.
   */
  sendBatch(principal: Principal, requests: readonly SendRequest[], options?: SendOptions): Promise<PublishResult[]>;
}

export function createSender(options: SenderOptions): Sender {
  const { broker, namer, maxTextLength, idempotencyWindowMs, pushQueue, ledgerKeys } = options;

  /** A checked publish, and what its push entry is made of once the id is known. */
  interface Prepared {
    readonly publish: PublishRequest;
    readonly push:
      | {
          readonly policy: PushPolicy;
          readonly audience: PushedAudience;
          readonly to: string;
          readonly text: string;
          readonly timestamp: number;
          readonly options: PushOptions;
          readonly classification: Classification;
        }
      | undefined;
  }

  const prepare = (principal: Principal, request: SendRequest, { countDeliveries }: SendOptions): Prepared => {
    const audience = request.audience ?? 'USER';
    if (!isAudience(audience)) throw new InvalidInputError(`audience must be one of ${AUDIENCES.join(', ')}`);
    const { text, to, idempotencyKey } = request;
    if (typeof text !== 'string' || text.length === 0) throw new InvalidInputError('text must not be empty');
    if (text.length > maxTextLength) throw new InvalidInputError(`text is longer than ${maxTextLength} characters (MAX_TEXT_LENGTH)`);
    if (typeof to !== 'string') throw new InvalidInputError('to must be a string');
    authorizePublish(principal, audience, to);
    if (idempotencyKey != null && typeof idempotencyKey !== 'string') throw new InvalidInputError('idempotencyKey must be a string');
    const policy = (request.push ?? 'WHEN_OFFLINE') as PushPolicy;
    if (!PUSH_POLICIES.includes(policy)) throw new InvalidInputError(`push must be one of ${PUSH_POLICIES.join(', ')}`);
    const options = parsePushOptions(request);
    const classification = parseClassification(request);
    const timestamp = Math.floor(Date.now() / 1000);
    const publish: PublishRequest = {
      destination: namer.destination(principal.tenant, audience, to),
      tenantKey: namer.tenantKey(principal.tenant),
      // Spread only when set: a notification without them encodes exactly as before.
      payload: encodeNotification({ text, timestamp, audience, sender: principal.name, ...classification }),
      idempotency:
        idempotencyKey == null || idempotencyKey === ''
          ? undefined
          : { key: namer.idempotencyKey(principal.tenant, principal.name, idempotencyKey), windowMs: idempotencyWindowMs },
      countDeliveries,
      ledger: ledgerKeys && {
        tenant: principal.tenant,
        keyPrefix: ledgerKeys.prefixOf(principal.tenant),
        event: { type: 'accepted', publisher: principal.name, audience, to, push: policy },
      },
    };
    // Only an audience of users one can name is pushed (the audience table); NEVER enters no stream.
    if (pushQueue === undefined || policy === 'NEVER' || !isPushedAudience(audience)) return { publish, push: undefined };
    const push = { policy, audience, to, text, timestamp, options, classification };
    // Counted, a WHEN_OFFLINE notification to a user is queued by the script only when no
    // subscribe server heard it; else after the count, if it reached nobody (`reachedLive`).
    const counted = countDeliveries !== false || publish.idempotency !== undefined;
    const when = policy === 'WHEN_OFFLINE' && audience === 'USER' && counted ? 'unheard' : 'always';
    const scripted = pushQueue.scripted(pushNotificationOf(principal, push), policy, when);
    return { publish: scripted ? { ...publish, push: scripted } : publish, push };
  };

  /** What the push entry carries of a notification, but its id. */
  const pushNotificationOf = (principal: Principal, push: NonNullable<Prepared['push']>): Omit<PushNotification, 'id'> => {
    const { audience, to, text, timestamp, options, classification } = push;
    return { tenant: principal.tenant, audience, to, text, timestamp, sender: principal.name, ...(hasPushOptions(options) ? { options } : {}), ...classification };
  };

  /**
   * Whether a `WHEN_OFFLINE` notification to a user is already known to have reached them
   * live: the count says so. Every subscription on a user's channel is that user's, and a
   * subscribe server that counts a delivery also marks the user seen live, so the worker
   * would take the entry only to skip it; queueing none saves the XADD and its round trip
   * on the one-device-per-user path. An uncounted publish (`{ id }`), a count of 0 (the
   * user is offline, or the reports did not arrive in time) and every other policy and
   * audience queue as before.
   */
  const reachedLive = (push: NonNullable<Prepared['push']>, result: PublishResult): boolean =>
    push.policy === 'WHEN_OFFLINE' && push.audience === 'USER' && result.receivedUsers !== undefined && result.receivedUsers > 0;

  /**
   * Publishes, then queues the push (before the caller is answered, so an acknowledged
   * notification always has its push entry, unless {@link reachedLive}). A duplicate
   * queues it again: if the first attempt's XADD failed after its publish, the retry with
   * the same idempotency key is what queues it; the worker's per-(notification, device)
   * markers keep a push from being sent twice when both entries exist.
   */
  const publishAndQueue = async (principal: Principal, { publish, push }: Prepared): Promise<PublishResult> => {
    const result = await broker.publish(publish);
    if (push === undefined || pushQueue === undefined || result.pushQueued === true || reachedLive(push, result)) return result;
    try {
      await pushQueue.enqueue({ id: result.id, ...pushNotificationOf(principal, push) }, push.policy);
    } catch (error) {
      throw new Failure(
        'OUTCOME_UNKNOWN',
        `notification ${result.id} was sent live and stored, but its push could not be queued: retry with the same idempotencyKey to queue it`,
        { cause: error },
      );
    }
    return result;
  };

  return {
    send: (principal, request, options = {}) => publishAndQueue(principal, prepare(principal, request, options)),
    async sendBatch(principal, requests, options = {}) {
      if (requests.length > MAX_BATCH_SIZE) throw new InvalidInputError(`a batch holds at most ${MAX_BATCH_SIZE} notifications`);
      const prepared = requests.map((request, index) => {
        try {
          return prepare(principal, request, options);
        } catch (error) {
          // A new failure of the same kind that names the notification; the caught one stays as it was.
          if (error instanceof Failure) throw new Failure(error.code, `notification ${index}: ${error.message}`, { cause: error });
          throw error;
        }
      });
      return Promise.all(prepared.map((request) => publishAndQueue(principal, request)));
    },
  };
}

/**
 * `sender`, timed and counted into `metrics`: each call's time by field
 * (`sendNotification`, `sendNotifications`) and outcome (`OK` or the failure's code),
 * and each notification published (a repeated `idempotencyKey` is not published again). Both the GraphQL mutation and gRPC `Send` go
 * through it, so the histogram is the mutation latency of either transport.
 */
export function createMeasuredSender(sender: Sender, metrics: Pick<HeraldMetrics, 'counts' | 'mutation'>): Sender {
  const measured = async <T>(field: string, published: (result: T) => number, run: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    try {
      const result = await run();
      metrics.counts.published += published(result);
      metrics.mutation(field, 'OK', (performance.now() - started) / 1000);
      return result;
    } catch (error) {
      metrics.mutation(field, error instanceof Failure ? error.code : 'INTERNAL_SERVER_ERROR', (performance.now() - started) / 1000);
      throw error;
    }
  };
  return {
    send: (principal, request, options) => measured('sendNotification', (result) => (result.duplicate ? 0 : 1), () => sender.send(principal, request, options)),
    sendBatch: (principal, requests, options) => measured('sendNotifications', (results) => results.filter((result) => !result.duplicate).length, () => sender.sendBatch(principal, requests, options)),
  };
}
