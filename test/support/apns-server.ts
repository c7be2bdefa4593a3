/**
 * A local stand-in for APNs, speaking its HTTP/2 provider API on 127.0.0.1 (h2c):
 * `POST /3/device/<token>` with `authorization: bearer <JWT>` and `apns-topic`. It checks
 * what Apple checks of a provider token — ES256, signed by the key whose public half it
 * holds, `kid` the key id, `iss` the team id, `iat` within the last hour — and answers
 * as APNs does: 200 with an `apns-id`, or an error status with `{ "reason": … }`. Tests
 * cue the error answers (410 Unregistered, 400 BadDeviceToken, 429, 503, 403
 * ExpiredProviderToken) per token.
 */
import { createPublicKey, generateKeyPairSync, randomUUID, verify } from 'node:crypto';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { ApnsCredentials } from '../../src/config/push.js';

export interface ApnsRequest {
  readonly token: string;
  readonly headers: http2.IncomingHttpHeaders;
  readonly body: Record<string, unknown>;
  /** The provider token's claims and header, as verified. */
  readonly jwt: { readonly header: Record<string, unknown>; readonly claims: Record<string, unknown>; readonly raw: string };
  /** The `apns-id` answered. */
  readonly apnsId: string;
  /** When it arrived (performance.now()). */
  readonly at: number;
}

/** An answer on cue: a status, Apple's `reason`, and headers (`retry-after`). */
export interface ApnsAnswer {
  readonly status: number;
  readonly reason?: string;
  readonly headers?: Record<string, string>;
}

export interface ApnsStandIn {
  /** `PUSH_APNS_URL`. */
  readonly url: string;
  /** The credentials the worker signs with (a key pair made for this stand-in). */
  readonly credentials: ApnsCredentials;
  /** Every request that carried a valid provider token, in arrival order. */
  readonly requests: ApnsRequest[];
  /** Requests refused with 403 for their provider token, and why. */
  readonly refusedTokens: string[];
  /**
   * Answers on cue, per device token: each request to the token takes the next one (then
   * 200s). `'*'` applies to every token without its own cue.
   */
  readonly cues: Map<string, ApnsAnswer[]>;
  /** Called after each request is recorded. */
  onRequest: (request: ApnsRequest) => void;
  close(): Promise<void>;
}

export const TEST_APNS_KEY_ID = 'ABC123DEFG';
export const TEST_APNS_TEAM_ID = 'TEAM123456';
export const TEST_APNS_TOPIC = 'com.example.herald';

export function createApnsCredentials(): ApnsCredentials & { publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return {
    keyId: TEST_APNS_KEY_ID,
    teamId: TEST_APNS_TEAM_ID,
    topic: TEST_APNS_TOPIC,
    privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

/** Verifies an APNs provider token as Apple does; returns its parts or throws why not. */
export function verifyProviderToken(raw: string, publicKeyPem: string, expected: { keyId: string; teamId: string }, nowMs = Date.now()): ApnsRequest['jwt'] {
  const [header64, claims64, signature64, extra] = raw.split('.');
  if (header64 === undefined || claims64 === undefined || signature64 === undefined || extra !== undefined) throw new Error('not a JWT');
  const header = JSON.parse(Buffer.from(header64, 'base64url').toString('utf8')) as Record<string, unknown>;
  const claims = JSON.parse(Buffer.from(claims64, 'base64url').toString('utf8')) as Record<string, unknown>;
  if (header['alg'] !== 'ES256') throw new Error(`alg ${String(header['alg'])}`);
  if (header['kid'] !== expected.keyId) throw new Error(`kid ${String(header['kid'])}`);
  const signed = verify('sha256', Buffer.from(`${header64}.${claims64}`), { key: createPublicKey(publicKeyPem), dsaEncoding: 'ieee-p1363' }, Buffer.from(signature64, 'base64url'));
  if (!signed) throw new Error('bad signature');
  if (claims['iss'] !== expected.teamId) throw new Error(`iss ${String(claims['iss'])}`);
  const iat = claims['iat'];
  if (typeof iat !== 'number' || !Number.isInteger(iat)) throw new Error('no iat');
  if (nowMs / 1000 - iat > 3600) throw new Error('ExpiredProviderToken');
  return { header, claims, raw };
}

export async function startApnsStandIn(): Promise<ApnsStandIn> {
  const credentials = createApnsCredentials();
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (session) => {
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
    session.on('error', () => undefined);
  });
  const standIn: ApnsStandIn = {
    url: '',
    credentials,
    requests: [],
    refusedTokens: [],
    cues: new Map(),
    onRequest: () => undefined,
    close: async () => {
      for (const session of sessions) session.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const reply = (stream: http2.ServerHttp2Stream, status: number, apnsId: string, reason?: string, headers: Record<string, string> = {}): void => {
    if (stream.destroyed) return;
    stream.respond({ ':status': status, 'apns-id': apnsId, ...(reason === undefined ? {} : { 'content-type': 'application/json' }), ...headers });
    stream.end(reason === undefined ? undefined : JSON.stringify({ reason }));
  };
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    let raw = '';
    stream.on('data', (chunk: Buffer) => (raw += chunk.toString()));
    stream.on('end', () => {
      const apnsId = String(headers['apns-id'] ?? randomUUID()).toUpperCase();
      const path = String(headers[':path']);
      const match = /^\/3\/device\/([0-9a-f]+)$/.exec(path);
      if (headers[':method'] !== 'POST') return reply(stream, 405, apnsId, 'MethodNotAllowed');
      if (match?.[1] === undefined) return reply(stream, 404, apnsId, 'BadPath');
      const authorization = String(headers['authorization'] ?? '');
      if (!authorization.startsWith('bearer ')) return reply(stream, 403, apnsId, 'MissingProviderToken');
      let jwt: ApnsRequest['jwt'];
      try {
        jwt = verifyProviderToken(authorization.slice('bearer '.length), credentials.publicKey, credentials);
      } catch (error) {
        const why = error instanceof Error ? error.message : String(error);
        standIn.refusedTokens.push(why);
        return reply(stream, 403, apnsId, why === 'ExpiredProviderToken' ? why : 'InvalidProviderToken');
      }
      if (headers['apns-topic'] !== credentials.topic) return reply(stream, 400, apnsId, headers['apns-topic'] === undefined ? 'MissingTopic' : 'DeviceTokenNotForTopic');
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(raw) as Record<string, unknown>;
      } catch {
        return reply(stream, 400, apnsId, 'PayloadEmpty');
      }
      const token = match[1];
      const cue = standIn.cues.get(token) ?? standIn.cues.get('*');
      const answer = cue?.shift();
      // a refused provider token is refused before anything is recorded, as Apple does
      if (answer !== undefined && answer.status === 403) return reply(stream, 403, apnsId, answer.reason ?? 'ExpiredProviderToken', answer.headers);
      const request: ApnsRequest = { token, headers, body, jwt, apnsId, at: performance.now() };
      standIn.requests.push(request);
      standIn.onRequest(request);
      if (answer === undefined) reply(stream, 200, apnsId);
      else reply(stream, answer.status, apnsId, answer.reason, answer.headers);
    });
  });
  const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
  return Object.assign(standIn, { url: `http://127.0.0.1:${port}` });
}
