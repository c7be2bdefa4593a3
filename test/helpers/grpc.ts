/**
 * The real @grpc/grpc-js client for tests, a Feed reader that collects events, and a
 * TCP proxy that can freeze a connection (a peer that vanished without closing).
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { credentials, Metadata, type ChannelOptions, type Client, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import { createWaiters } from './waiters.js';
import { loadHeraldProto, type FeedResponse, type SendRequest, type SendResponse } from '../../src/grpc/proto.js';

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
    nth: (n, timeoutMs = 5000) => waiters.until(() => events[n], `event #${n}`, timeoutMs, seen),
    ended: async (timeoutMs = 5000) => (await waiters.until(() => end, 'the call to end', timeoutMs, seen)).error,
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
