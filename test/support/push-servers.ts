/**
 * Local stand-ins for the services the push worker talks to, speaking their protocols:
 *
 * - FCM HTTP v1 on an HTTP/2 (h2c) server, which only accepts the bearer tokens the
 *   OAuth2 stand-in issued; and Google's OAuth2 token endpoint (HTTP/1.1, as
 *   google-auth-library's fetch speaks it), which checks the JWT-bearer grant the library
 *   signs: RS256 by the service account's key, its `iss`, `scope`, `aud` and `exp`.
 * - An HTTP/1.1 recorder for webhook receivers and Web Push endpoints.
 *
 * They listen on 127.0.0.1, which the push worker refuses to connect to unless it is
 * allowed: senders and device stores that talk to them take {@link localNetworkPolicy},
 * and a worker process gets `PUSH_ALLOWED_NETWORKS` = {@link LOCAL_NETWORKS}.
 */
import { createECDH, generateKeyPairSync, randomBytes, type ECDH } from 'node:crypto';
import http, { type IncomingHttpHeaders } from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import jwt from 'jsonwebtoken';
import { parseCidr } from '../../src/config/networks.js';
import { createNetworkPolicy } from '../../src/push/network-policy.js';
import { FCM_SCOPE, GOOGLE_TOKEN_URL, type ServiceAccountKey } from '../../src/push/senders/fcm.js';

/** `PUSH_ALLOWED_NETWORKS` for a worker that talks to these stand-ins. */
export const LOCAL_NETWORKS = '127.0.0.0/8';
/** The network policy of a sender or device store that talks to these stand-ins. */
export const localNetworkPolicy = createNetworkPolicy({ allowedNetworks: [parseCidr(LOCAL_NETWORKS)] });

export interface FcmMessage {
  readonly token: string;
  readonly body: Record<string, unknown>;
  readonly validateOnly: boolean;
  /** When the request arrived (performance.now()). */
  readonly at: number;
}

/** What the stand-in answers to one request; undefined: 200 with a message name. */
export type FcmAnswer = { status: number; headers?: Record<string, string>; body?: unknown } | undefined;

export interface FcmStandIn {
  /** `PUSH_FCM_URL`. */
  readonly url: string;
  /** `PUSH_FCM_TOKEN_URL`. */
  readonly tokenUrl: string;
  readonly serviceAccount: ServiceAccountKey;
  /** Every message request that carried a valid token, in arrival order. */
  readonly messages: FcmMessage[];
  /** Token requests, and how many of them carried a valid grant. */
  readonly grants: { requested: number; valid: number; problems: string[] };
  /** HTTP/2 connections accepted so far. */
  readonly sessions: number;
  /** The most message streams open at once. */
  readonly peakStreams: number;
  /** Called after each message is recorded; tests wake their waiters from it. */
  onMessage: (message: FcmMessage) => void;
  /** Decides the answer; called after the delay. */
  answer: (message: FcmMessage) => FcmAnswer;
  /** Tokens answered 404 UNREGISTERED. */
  readonly unregistered: Set<string>;
  close(): Promise<void>;
}

export interface FcmStandInOptions {
  /** Delay before each answer, in ms. @default 0 */
  delayMs?: number;
  /** SETTINGS_MAX_CONCURRENT_STREAMS announced, as Google's front ends do. @default 100 */
  maxConcurrentStreams?: number;
  /** Record each message (tests) or only count it (the bench, 10,000 messages). @default true */
  record?: boolean;
}

export function createServiceAccount(projectId = 'herald-test'): ServiceAccountKey & { publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    projectId,
    clientEmail: `push@${projectId}.iam.gserviceaccount.com`,
    privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

export async function startFcmStandIn(options: FcmStandInOptions = {}): Promise<FcmStandIn> {
  const account = createServiceAccount();
  const issued = new Set<string>();
  const grants = { requested: 0, valid: 0, problems: [] as string[] };
  const messages: FcmMessage[] = [];
  const unregistered = new Set<string>();
  const delayMs = options.delayMs ?? 0;
  const record = options.record ?? true;
  let sessions = 0;
  let open = 0;
  let peakStreams = 0;

  const tokenServer = http.createServer((request, response) => {
    let raw = '';
    request.on('data', (chunk: Buffer) => (raw += chunk.toString()));
    request.on('end', () => {
      grants.requested += 1;
      const form = new URLSearchParams(raw);
      try {
        if (request.method !== 'POST') throw new Error(`method ${request.method}`);
        if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') throw new Error(`grant_type ${form.get('grant_type')}`);
        const claims = jwt.verify(form.get('assertion') ?? '', account.publicKey, {
          algorithms: ['RS256'],
          audience: GOOGLE_TOKEN_URL,
          issuer: account.clientEmail,
        }) as jwt.JwtPayload;
        if (typeof claims.exp !== 'number') throw new Error('no exp');
        if (!String(claims['scope']).split(' ').includes(FCM_SCOPE)) throw new Error(`scope ${String(claims['scope'])}`);
      } catch (error) {
        grants.problems.push(error instanceof Error ? error.message : String(error));
        response.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'invalid_grant' }));
        return;
      }
      grants.valid += 1;
      const token = `ya29.${randomBytes(16).toString('hex')}`;
      issued.add(token);
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: token, expires_in: 3599, token_type: 'Bearer' }));
    });
  });

  const fcmServer = http2.createServer({ settings: { maxConcurrentStreams: options.maxConcurrentStreams ?? 100 } });
  const live = new Set<http2.ServerHttp2Session>();
  fcmServer.on('session', (session) => {
    sessions += 1;
    live.add(session);
    session.on('close', () => live.delete(session));
    session.on('error', () => undefined); // a client killed mid-request resets its connection
  });
  const reply = (stream: http2.ServerHttp2Stream, status: number, body: unknown, headers: Record<string, string> = {}): void => {
    if (stream.destroyed) return;
    stream.respond({ ':status': status, 'content-type': 'application/json', ...headers });
    stream.end(JSON.stringify(body));
  };
  const standIn: FcmStandIn = {
    url: '',
    tokenUrl: '',
    serviceAccount: account,
    messages,
    grants,
    get sessions() {
      return sessions;
    },
    get peakStreams() {
      return peakStreams;
    },
    onMessage: () => undefined,
    answer: () => undefined,
    unregistered,
    close: async () => {
      // a client's idle connection would hold close() open until it times out
      for (const session of live) session.destroy();
      await new Promise<void>((resolve) => fcmServer.close(() => resolve()));
      tokenServer.closeAllConnections();
      await new Promise<void>((resolve) => tokenServer.close(() => resolve()));
    },
  };
  fcmServer.on('stream', (stream, headers) => {
    open += 1;
    peakStreams = Math.max(peakStreams, open);
    stream.on('close', () => (open -= 1));
    stream.on('error', () => undefined);
    let raw = '';
    stream.on('data', (chunk: Buffer) => (raw += chunk.toString()));
    stream.on('end', () => {
      const bearer = String(headers['authorization'] ?? '').replace(/^Bearer /, '');
      if (!issued.has(bearer)) {
        reply(stream, 401, { error: { code: 401, status: 'UNAUTHENTICATED', message: 'Request had invalid authentication credentials.' } });
        return;
      }
      if (headers[':method'] !== 'POST' || headers[':path'] !== `/v1/projects/${account.projectId}/messages:send`) {
        reply(stream, 404, { error: { code: 404, status: 'NOT_FOUND', message: `no ${headers[':path']}` } });
        return;
      }
      const body = JSON.parse(raw) as { validate_only?: boolean; message?: { token?: string } };
      const message: FcmMessage = { token: String(body.message?.token), body, validateOnly: body.validate_only === true, at: performance.now() };
      if (record) messages.push(message);
      standIn.onMessage(message);
      const answer = (): void => {
        if (unregistered.has(message.token)) {
          reply(stream, 404, {
            error: {
              code: 404,
              status: 'NOT_FOUND',
              message: 'Requested entity was not found.',
              details: [{ '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode: 'UNREGISTERED' }],
            },
          });
          return;
        }
        const custom = standIn.answer(message);
        if (custom === undefined) reply(stream, 200, { name: `projects/${account.projectId}/messages/${randomBytes(6).toString('hex')}` });
        else reply(stream, custom.status, custom.body ?? {}, custom.headers);
      };
      if (delayMs > 0) setTimeout(answer, delayMs);
      else answer();
    });
  });

  const tokenPort = await listen(tokenServer);
  const fcmPort = await new Promise<number>((resolve) => fcmServer.listen(0, '127.0.0.1', () => resolve((fcmServer.address() as AddressInfo).port)));
  return Object.assign(standIn, { url: `http://127.0.0.1:${fcmPort}`, tokenUrl: `http://127.0.0.1:${tokenPort}/token` });
}

export interface RecordedRequest {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  readonly at: number;
}

export interface HttpRecorder {
  readonly url: string;
  readonly requests: RecordedRequest[];
  /** Decides the answer to each request (after it is recorded), and how long to hold it back. @default 201 at once */
  answer: (request: RecordedRequest) => { status: number; headers?: Record<string, string>; delayMs?: number };
  /** Called as each request is recorded, before it is answered. */
  onRequest: (request: RecordedRequest) => void;
  close(): Promise<void>;
}

/** An HTTP/1.1 server that records every request: a webhook receiver, a Web Push endpoint. */
export async function startHttpRecorder(): Promise<HttpRecorder> {
  const requests: RecordedRequest[] = [];
  const recorder: HttpRecorder = {
    url: '',
    requests,
    answer: () => ({ status: 201 }),
    onRequest: () => undefined,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const recorded: RecordedRequest = { path: request.url ?? '', headers: request.headers, body: Buffer.concat(chunks), at: performance.now() };
      requests.push(recorded);
      recorder.onRequest(recorded);
      const { status, headers, delayMs = 0 } = recorder.answer(recorded);
      const send = (): void => void response.writeHead(status, headers).end();
      if (delayMs > 0) setTimeout(send, delayMs);
      else send();
    });
  });
  const port = await listen(server);
  return Object.assign(recorder, { url: `http://127.0.0.1:${port}` });
}

export interface HangingReceiver {
  readonly url: string;
  /** Requests received so far. */
  readonly received: number;
  /** Requests held now: received, never answered, their connection still open. */
  readonly holding: number;
  /** The most requests held at once. */
  readonly peakHolding: number;
  /** The most TCP connections open at once (a connection closing and the next opening can overlap by one). */
  readonly peakConnections: number;
  /** Called whenever `holding` changes; tests wake their waiters from it. */
  onChange: () => void;
  close(): Promise<void>;
}

/**
 * A webhook receiver that accepts every connection, reads the request and never
 * answers: what a dead or hostile endpoint looks like to a sender. A request counts as
 * held from its arrival until its connection closes (the sender gives up).
 */
export async function startHangingReceiver(): Promise<HangingReceiver> {
  let received = 0;
  let holding = 0;
  let peakHolding = 0;
  let connections = 0;
  let peakConnections = 0;
  const server = http.createServer({ requestTimeout: 0 }, (request) => {
    received += 1;
    holding += 1;
    peakHolding = Math.max(peakHolding, holding);
    request.socket.once('close', () => {
      holding -= 1;
      receiver.onChange();
    });
    request.resume();
    receiver.onChange();
  });
  server.on('connection', (socket) => {
    connections += 1;
    peakConnections = Math.max(peakConnections, connections);
    socket.once('close', () => (connections -= 1));
  });
  const receiver: HangingReceiver = {
    url: '',
    get received() {
      return received;
    },
    get holding() {
      return holding;
    },
    get peakHolding() {
      return peakHolding;
    },
    get peakConnections() {
      return peakConnections;
    },
    onChange: () => undefined,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const port = await listen(server);
  return Object.assign(receiver, { url: `http://127.0.0.1:${port}` });
}

/** A browser's side of a Web Push subscription: its key pair and auth secret, and the JSON it gives the app. */
export interface BrowserSubscription {
  readonly keyPair: ECDH;
  readonly authSecret: Buffer;
  readonly json: { endpoint: string; keys: { p256dh: string; auth: string } };
}

export function createBrowserSubscription(endpoint: string): BrowserSubscription {
  const keyPair = createECDH('prime256v1');
  keyPair.generateKeys();
  const authSecret = randomBytes(16);
  return {
    keyPair,
    authSecret,
    json: { endpoint, keys: { p256dh: keyPair.getPublicKey().toString('base64url'), auth: authSecret.toString('base64url') } },
  };
}

function listen(server: http.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}
