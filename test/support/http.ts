/** GraphQL over HTTP as another service would send it. */
import { PATIENCE_MS } from './patience.js';

export interface GraphQLResponse {
  status: number;
  headers: Headers;
  body: {
    data?: Record<string, unknown> | null;
    errors?: Array<{ message: string; extensions?: { code?: string } }>;
  };
}

export async function postGraphQL(
  url: string,
  query: string,
  options: { token?: string; variables?: Record<string, unknown>; headers?: Record<string, string> } = {},
): Promise<GraphQLResponse> {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      Accept: 'application/graphql-response+json, application/json',
      ...(options.token ? { Authorization: `Bearer ${options.token}` } : {}),
      ...options.headers,
    },
    body: JSON.stringify({ query, variables: options.variables }),
  });
  const text = await response.text();
  let body: GraphQLResponse['body'];
  try {
    body = JSON.parse(text) as GraphQLResponse['body'];
  } catch {
    throw new Error(`not JSON (HTTP ${response.status}): ${text.slice(0, 200)}`);
  }
  return { status: response.status, headers: response.headers, body };
}

export const SEND = `mutation Send($to: String!, $text: String!, $audience: Audience, $idempotencyKey: String) {
  sendNotification(to: $to, text: $text, audience: $audience, idempotencyKey: $idempotencyKey) { id receivedUsers duplicate }
}`;

export interface Sent {
  id: string;
  receivedUsers: number;
  duplicate: boolean;
}

/** Sends a notification; resolves with the whole `SendResult`, or throws with the GraphQL errors. */
export async function sendFull(
  publishUrl: string,
  token: string,
  variables: { to: string; text: string; audience?: 'USER' | 'STORE' | 'COMPANY'; idempotencyKey?: string },
): Promise<Sent> {
  const { body } = await postGraphQL(publishUrl, SEND, { token, variables });
  if (body.errors) throw new Error(`sendNotification failed: ${JSON.stringify(body.errors)}`);
  return body.data?.['sendNotification'] as Sent;
}

/** Sends a notification; resolves with `receivedUsers`, or throws with the GraphQL errors. */
export async function send(
  publishUrl: string,
  token: string,
  to: string,
  text: string,
  audience?: 'USER' | 'STORE' | 'COMPANY',
): Promise<number> {
  return (await sendFull(publishUrl, token, { to, text, ...(audience ? { audience } : {}) })).receivedUsers;
}

/** The first error's `extensions.code` of a response. */
export function errorCode(response: GraphQLResponse): string | undefined {
  return response.body.errors?.[0]?.extensions?.code;
}

/** One Server-Sent Event. */
export interface SseEvent {
  id: string | undefined;
  event: string;
  data: string;
}

/** Reads an event stream as it arrives; `next()` resolves with the next event. */
export function readEvents(response: Response): { next(timeoutMs?: number): Promise<SseEvent> } {
  const reader = response.body?.pipeThrough(new TextDecoderStream()).getReader();
  if (!reader) throw new Error('the response has no body');
  let buffer = '';
  const events: SseEvent[] = [];
  const parse = (block: string): SseEvent | undefined => {
    const event: SseEvent = { id: undefined, event: 'message', data: '' };
    let seen = false;
    for (const line of block.split('\n')) {
      if (line.startsWith(':') || line === '') continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      seen = true;
      if (field === 'id') event.id = value;
      else if (field === 'event') event.event = value;
      else if (field === 'data') event.data = event.data ? `${event.data}\n${value}` : value;
    }
    return seen ? event : undefined;
  };
  return {
    async next(timeoutMs = PATIENCE_MS) {
      const deadline = Date.now() + timeoutMs;
      while (events.length === 0) {
        const remaining = deadline - Date.now();
        if (remaining <= 0) throw new Error(`no event within ${timeoutMs} ms`);
        let timer: NodeJS.Timeout | undefined;
        const chunk = await Promise.race([
          reader.read(),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`no event within ${timeoutMs} ms`)), remaining);
          }),
        ]).finally(() => clearTimeout(timer));
        if (chunk.done) throw new Error('the event stream ended');
        buffer += chunk.value;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const event = parse(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (event) events.push(event);
        }
      }
      return events.shift() as SseEvent;
    },
  };
}
