/**
 * The real @grpc/grpc-js client for tests, a Feed reader that collects events, a TCP
 * proxy that can freeze a connection (a peer that vanished without closing) and one that
 * counts HTTP/2 PING and GOAWAY frames on the wire.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createServer, connect, type Server, type Socket } from 'node:net';
import {
  credentials,
  loadPackageDefinition,
  Metadata,
  type ChannelOptions,
  type Client,
  type ClientDuplexStream,
  type ClientReadableStream,
  type GrpcObject,
  type ServiceClientConstructor,
  type ServiceError,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { createWaiters } from './waiters.js';
import {
  loadHealthProto,
  loadHeraldProto,
  type FeedResponse,
  type HealthCheckResponse,
  type SendRequest,
  type SendResponse,
  type ServingStatus,
} from '../../src/transports/grpc/proto.js';
import { PATIENCE_MS } from './patience.js';

const proto = loadHeraldProto();
const clients: Client[] = [];
const proxies: Server[] = [];
const calls: Array<{ cancel(): void }> = [];

/** Cancels every Feed call and closes every client opened here (closing a client alone leaves its calls open). */
export function closeGrpcClients(): void {
  for (const call of calls.splice(0)) call.cancel();
  for (const client of clients.splice(0)) client.close();
  for (const proxy of proxies.splice(0)) proxy.close();
}

export function bearer(token: string | undefined): Metadata {
  const metadata = new Metadata();
  if (token !== undefined) metadata.set('authorization', `Bearer ${token}`);
  return metadata;
}

export interface FeedClient extends Client {
  feed(request: { userName: string; since?: string }, metadata: Metadata): ClientReadableStream<FeedResponse>;
}

export interface PublisherClient extends Client {
  send(request: Partial<SendRequest>, metadata: Metadata, callback: (error: ServiceError | null, response: SendResponse) => void): void;
  sendBatch(
    request: { notifications: Array<Partial<SendRequest>> },
    metadata: Metadata,
    callback: (error: ServiceError | null, response: { results: SendResponse[] }) => void,
  ): void;
}

export function feedClient(port: number, options: ChannelOptions = {}): FeedClient {
  const client = new proto.NotificationFeed(`127.0.0.1:${port}`, credentials.createInsecure(), options) as unknown as FeedClient;
  clients.push(client);
  return client;
}

export function publisherClient(port: number): PublisherClient {
  const client = new proto.NotificationPublisher(`127.0.0.1:${port}`, credentials.createInsecure()) as unknown as PublisherClient;
  clients.push(client);
  return client;
}

/** Sends one notification over gRPC; rejects with the ServiceError. */
export function grpcSend(client: PublisherClient, token: string | undefined, request: Partial<SendRequest>): Promise<SendResponse> {
  return new Promise((resolve, reject) => client.send(request, bearer(token), (error, response) => (error ? reject(error) : resolve(response))));
}

export interface FeedReader {
  readonly events: FeedResponse[];
  /** Resolves with the `n`th event (0-based). */
  nth(n: number, timeoutMs?: number): Promise<FeedResponse>;
  /** Resolves with the status error the call ended with (or null for OK). */
  ended(timeoutMs?: number): Promise<ServiceError | null>;
  cancel(): void;
}

export function readFeed(call: ClientReadableStream<FeedResponse>): FeedReader {
  calls.push(call);
  const events: FeedResponse[] = [];
  let end: { error: ServiceError | null } | undefined;
  const waiters = createWaiters();
  call.on('data', (event: FeedResponse) => {
    events.push(event);
    waiters.wake();
  });
  call.on('error', (error: ServiceError) => {
    end = { error };
    waiters.wake();
  });
  call.on('end', () => {
    end ??= { error: null };
    waiters.wake();
  });
  const seen = () => `got ${JSON.stringify(events)}${end ? ` and the end (${end.error?.code ?? 'OK'})` : ''}`;
  return {
    events,
    nth: (n, timeoutMs = PATIENCE_MS) => waiters.until(() => events[n], `event #${n}`, timeoutMs, seen),
    ended: async (timeoutMs = PATIENCE_MS) => (await waiters.until(() => end, 'the call to end', timeoutMs, seen)).error,
    cancel: () => call.cancel(),
  };
}

/** A TCP proxy to `port`; `freeze()` stops it forwarding in either direction. */
export async function freezableProxy(port: number): Promise<{ port: number; freeze(): void }> {
  const pairs: Array<[Socket, Socket]> = [];
  const server = createServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    pairs.push([client, upstream]);
  });
  proxies.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    freeze() {
      for (const [client, upstream] of pairs) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
      }
    },
  };
}

/** HTTP/2 frame types counted by {@link frameCountingProxy} (RFC 9113 §6). */
const PING = 0x6;
const GOAWAY = 0x7;
const ACK = 0x1;
const CLIENT_PREFACE_BYTES = 24;

/**
 * Reads HTTP/2 frames from a byte stream (after `skip` bytes of preface) and calls
 * `frame(type, flags)` for each: what went over the wire, whatever either side reports.
 */
function frameReader(skip: number, frame: (type: number, flags: number) => void): (chunk: Buffer) => void {
  let pending = Buffer.alloc(0);
  return (chunk) => {
    pending = Buffer.concat([pending, chunk]);
    if (skip > 0) {
      const skipped = Math.min(skip, pending.length);
      pending = pending.subarray(skipped);
      skip -= skipped;
    }
    while (pending.length >= 9) {
      const length = pending.readUIntBE(0, 3);
      if (pending.length < 9 + length) break;
      frame(pending[3]!, pending[4]!);
      pending = pending.subarray(9 + length);
    }
  };
}

/**
 * A TCP proxy to `port` that counts, on the wire, the PINGs clients send (not their
 * acknowledgements) and the GOAWAY frames the server sends.
 */
export async function frameCountingProxy(port: number): Promise<{ port: number; pings(): number; goaways(): number }> {
  let pings = 0;
  let goaways = 0;
  const server = createServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    const fromClient = frameReader(CLIENT_PREFACE_BYTES, (type, flags) => (pings += type === PING && (flags & ACK) === 0 ? 1 : 0));
    const fromServer = frameReader(0, (type) => (goaways += type === GOAWAY ? 1 : 0));
    client.on('data', fromClient);
    upstream.on('data', fromServer);
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  proxies.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return { port: typeof address === 'object' && address ? address.port : 0, pings: () => pings, goaways: () => goaways };
}

export interface HealthClient extends Client {
  check(request: { service: string }, callback: (error: ServiceError | null, response: HealthCheckResponse) => void): void;
  watch(request: { service: string }): ClientReadableStream<HealthCheckResponse>;
  list(request: object, callback: (error: ServiceError | null, response: { statuses: Record<string, HealthCheckResponse> }) => void): void;
}

/** A `grpc.health.v1.Health` client, as a Kubernetes gRPC probe or grpc-health-probe uses. */
export function healthClient(port: number): HealthClient {
  const client = new (loadHealthProto().Health)(`127.0.0.1:${port}`, credentials.createInsecure()) as unknown as HealthClient;
  clients.push(client);
  return client;
}

/** `Check(service)`: resolves with the status, rejects with the ServiceError. */
export function healthCheck(client: HealthClient, service = ''): Promise<ServingStatus> {
  return new Promise((resolve, reject) => client.check({ service }, (error, response) => (error ? reject(error) : resolve(response.status))));
}

export interface HealthWatch {
  readonly statuses: ServingStatus[];
  /** Resolves with the `n`th status sent (0-based). */
  nth(n: number, timeoutMs?: number): Promise<ServingStatus>;
  /** Resolves with the status error the call ended with (or null for OK). */
  ended(timeoutMs?: number): Promise<ServiceError | null>;
}

/** Opens `Watch(service)` and records every status it sends. */
export function healthWatch(client: HealthClient, service = ''): HealthWatch {
  const call = client.watch({ service });
  calls.push(call);
  const statuses: ServingStatus[] = [];
  let end: { error: ServiceError | null } | undefined;
  const waiters = createWaiters();
  call.on('data', (response: HealthCheckResponse) => {
    statuses.push(response.status);
    waiters.wake();
  });
  call.on('error', (error: ServiceError) => {
    end = { error };
    waiters.wake();
  });
  call.on('end', () => {
    end ??= { error: null };
    waiters.wake();
  });
  const seen = () => `got ${JSON.stringify(statuses)}${end ? ` and the end (${end.error?.code ?? 'OK'})` : ''}`;
  return {
    statuses,
    nth: (n, timeoutMs = PATIENCE_MS) => waiters.until(() => statuses[n], `status #${n}`, timeoutMs, seen),
    ended: async (timeoutMs = PATIENCE_MS) => (await waiters.until(() => end, 'the watch to end', timeoutMs, seen)).error,
  };
}

interface ReflectionResponse {
  listServicesResponse?: { service: Array<{ name: string }> };
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
  errorResponse?: { errorCode: number; errorMessage: string };
}

interface ReflectionClient extends Client {
  serverReflectionInfo(): ClientDuplexStream<object, ReflectionResponse>;
}

/** The reflection proto as @grpc/reflection ships it: a client built from it, not from Herald's code. */
const reflectionProto = (() => {
  const packageDir = dirname(createRequire(import.meta.url).resolve('@grpc/reflection/package.json'));
  const definition = loadSync(join(packageDir, 'build/proto/grpc/reflection/v1/reflection.proto'), { keepCase: false, defaults: true, oneofs: true });
  return (loadPackageDefinition(definition) as GrpcObject & { grpc: { reflection: { v1: { ServerReflection: ServiceClientConstructor } } } }).grpc
    .reflection.v1;
})();

/**
 * One `grpc.reflection.v1.ServerReflection/ServerReflectionInfo` exchange, as `grpcurl
 * list` / `describe` do: sends `request`, resolves with the first response, ends the stream.
 */
export function reflect(port: number, request: { listServices: string } | { fileContainingSymbol: string }): Promise<ReflectionResponse> {
  const client = new reflectionProto.ServerReflection(`127.0.0.1:${port}`, credentials.createInsecure()) as unknown as ReflectionClient;
  clients.push(client);
  return new Promise((resolve, reject) => {
    const call = client.serverReflectionInfo();
    call.once('data', (response: ReflectionResponse) => {
      call.end();
      resolve(response);
    });
    call.once('error', reject);
    call.write(request);
  });
}
