/**
 * `createHeraldPublisher`: `send` and `sendMany` over HTTP POST to the publish server.
 * Each call makes one idempotency key (per input) and keeps it across its retries, so a
 * notification the server stored on an attempt whose answer was lost is not stored again:
 * the retry gets the first one's id. Retried: `OUTCOME_UNKNOWN`, `SERVICE_UNAVAILABLE`,
 * network errors and timeouts, with full-jitter backoff, until the deadline.
 */
import { reconnectDelay } from './backoff.js';
import { firstFailure, isRecord } from './graphql.js';
import { createTokenSupplier } from './token.js';
import { HeraldSendError, type HeraldPublisher, type HeraldPublisherOptions, type SendInput, type SendResult } from './types.js';

const SEND_MANY_MUTATION = `mutation HeraldSendMany($notifications: [NotificationInput!]!) {
  sendNotifications(notifications: $notifications) { id receivedUsers }
}`;

/** Codes after which the same request may succeed; the others are final. */
const RETRIED_CODES = new Set(['OUTCOME_UNKNOWN', 'SERVICE_UNAVAILABLE']);
/** Codes that say the server did not store the notification. */
const NOTHING_STORED_CODES = new Set(['SERVICE_UNAVAILABLE']);

/** A fresh idempotency key (letters, digits and `-`, as the server accepts). */
function makeIdempotencyKey(): string {
  const crypto: unknown = (globalThis as Record<string, unknown>)['crypto'];
  if (isRecord(crypto) && typeof crypto['randomUUID'] === 'function') return (crypto['randomUUID'] as () => string)();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}-${Math.random().toString(36).slice(2)}`;
}

/** One attempt's outcome. */
type Attempt =
  | { readonly kind: 'stored'; readonly results: SendResult[] }
  | { readonly kind: 'retry'; readonly code: string; readonly message: string; readonly mayHaveBeenStored: boolean }
  | { readonly kind: 'refused'; readonly code: string; readonly message: string };

export function createHeraldPublisher(options: HeraldPublisherOptions): HeraldPublisher {
  const { url, deadlineMs = 30_000, attemptTimeoutMs = 10_000 } = options;
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const tokens = createTokenSupplier(options.token);

  const attempt = async (notifications: readonly Record<string, unknown>[], timeoutMs: number): Promise<Attempt> => {
    let response: Response;
    let body: unknown;
    try {
      const token = await tokens.next();
      response = await fetchImpl(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ query: SEND_MANY_MUTATION, variables: { notifications } }),
        signal: AbortSignal.timeout(timeoutMs),
      });
      body = await response.json().catch(() => undefined);
    } catch (error) {
      // The request may have reached the server and been stored before the answer was lost,
      // unless the connection was refused outright.
      const refusedOutright = /ECONNREFUSED/.test(String((error as { cause?: unknown } | undefined)?.cause ?? error));
      return { kind: 'retry', code: 'NETWORK', message: String(error), mayHaveBeenStored: !refusedOutright };
    }
    const failure = isRecord(body) ? firstFailure(body['errors']) : undefined;
    const data = isRecord(body) ? body['data'] : undefined;
    const sent = isRecord(data) ? data['sendNotifications'] : undefined;
    if (!failure && Array.isArray(sent)) {
      const results = sent.map((result: unknown): SendResult => {
        const record = isRecord(result) ? result : {};
        return { id: String(record['id']), receivedUsers: Number(record['receivedUsers'] ?? 0) };
      });
      return { kind: 'stored', results };
    }
    if (failure && RETRIED_CODES.has(failure.code)) return { kind: 'retry', code: failure.code, message: failure.message, mayHaveBeenStored: !NOTHING_STORED_CODES.has(failure.code) };
    if (failure) return { kind: 'refused', code: failure.code, message: failure.message };
    // No GraphQL answer: a proxy's 502/503/504, or a body cut short.
    return { kind: 'retry', code: `HTTP_${response.status}`, message: `HTTP ${response.status} without a GraphQL result`, mayHaveBeenStored: response.status !== 503 };
  };

  const sendAll = async (inputs: readonly SendInput[]): Promise<SendResult[]> => {
    const callKey = makeIdempotencyKey();
    const notifications = inputs.map((input, index) => ({
      to: input.to,
      text: input.text,
      ...(input.audience === undefined ? {} : { audience: input.audience }),
      ...(input.push === undefined ? {} : { push: input.push }),
      idempotencyKey: input.idempotencyKey ?? (inputs.length === 1 ? callKey : `${callKey}.${index}`),
    }));
    const reportedKey = notifications.length === 1 ? (notifications[0]?.idempotencyKey ?? callKey) : callKey;
    const deadline = Date.now() + deadlineMs;
    let mayHaveBeenStored = false;
    for (let tries = 0; ; tries++) {
      const outcome = await attempt(notifications, Math.max(1, Math.min(attemptTimeoutMs, deadline - Date.now())));
      if (outcome.kind === 'stored') return outcome.results;
      if (outcome.kind === 'refused') {
        throw new HeraldSendError(outcome.code, outcome.message, mayHaveBeenStored, reportedKey);
      }
      mayHaveBeenStored ||= outcome.mayHaveBeenStored;
      const wait = reconnectDelay(tries, false, { minMs: 200, maxMs: 5_000 });
      if (Date.now() + wait >= deadline) {
        throw new HeraldSendError(outcome.code, `gave up after ${tries + 1} attempts within ${deadlineMs} ms: ${outcome.message}`, mayHaveBeenStored, reportedKey);
      }
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  };

  return {
    async send(input) {
      const [result] = await sendAll([input]);
      if (!result) throw new HeraldSendError('BAD_RESPONSE', 'the server answered without a result', true, input.idempotencyKey ?? '');
      return result;
    },
    sendMany: (inputs) => (inputs.length === 0 ? Promise.resolve([]) : sendAll(inputs)),
  };
}
