/** GraphQL over HTTP as another service would send it. */

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

export const SEND = `mutation Send($to: String!, $text: String!, $audience: Audience) {
  sendNotification(to: $to, text: $text, audience: $audience) { receivedUsers }
}`;

/** Sends a notification; resolves with `receivedUsers`, or throws with the GraphQL errors. */
export async function send(
  publishUrl: string,
  token: string,
  to: string,
  text: string,
  audience?: 'USER' | 'STORE' | 'COMPANY',
): Promise<number> {
  const { body } = await postGraphQL(publishUrl, SEND, { token, variables: { to, text, audience } });
  if (body.errors) throw new Error(`sendNotification failed: ${JSON.stringify(body.errors)}`);
  return (body.data?.['sendNotification'] as { receivedUsers: number }).receivedUsers;
}

/** The first error's `extensions.code` of a response. */
export function errorCode(response: GraphQLResponse): string | undefined {
  return response.body.errors?.[0]?.extensions?.code;
}
