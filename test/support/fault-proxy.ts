/**
 * A TCP proxy that stands between Herald and Redis (or any server) and breaks the
 * connections through it the ways real networks do:
 *
 * - `silent`: the connections open now accept bytes and forward none, in either
 *   direction, and never close — a crashed host, a lost NAT/conntrack entry, a
 *   live-migrated VM. New connections pass.
 * - `drop`: every connection, open now or opened later, has its bytes read and thrown
 *   away, until {@link FaultProxy.forward} — after which the survivors' streams are out of
 *   step (what was dropped is gone).
 * - `latency`: each chunk is forwarded `ms` later, in order.
 * - `cut`: every connection open now is reset.
 *
 * It counts the connections it accepted, so a test can tell a client that connected again
 * from one that never did.
 */
import { createServer, Socket, type Server } from 'node:net';

export type Fault = { kind: 'silent' } | { kind: 'drop' } | { kind: 'latency'; ms: number } | { kind: 'cut' };

export interface FaultProxy {
  /** The port it listens on, on 127.0.0.1. */
  readonly port: number;
  /** How many connections it has accepted since it started. */
  readonly accepted: number;
  /** How many of them are open now. */
  readonly open: number;
  /** Applies `fault` (see the module's comment for what each does). */
  fault(fault: Fault): void;
  /** Forwards again, without delay, on every connection opened from now on and on those `drop` or `latency` held. */
  forward(): void;
  close(): Promise<void>;
}

interface Link {
  readonly client: Socket;
  readonly upstream: Socket;
  /** Bytes are thrown away instead of forwarded (`silent`, `drop`). */
  discard: boolean;
  /** Silenced for good: `forward()` does not wake it. */
  silenced: boolean;
}

const proxies: FaultProxy[] = [];

/** Starts a proxy to `127.0.0.1:targetPort` on a free port. */
export async function startFaultProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<FaultProxy> {
  const links = new Set<Link>();
  let accepted = 0;
  let dropping = false;
  let latencyMs = 0;

  const pipe = (from: Socket, to: Socket, link: Link): void => {
    from.on('data', (chunk: Buffer) => {
      if (link.discard) return;
      if (latencyMs === 0) to.write(chunk);
      else setTimeout(() => link.discard || to.destroyed || to.write(chunk), latencyMs);
    });
  };
  const server: Server = createServer((client) => {
    accepted += 1;
    const upstream = new Socket();
    const link: Link = { client, upstream, discard: dropping, silenced: false };
    links.add(link);
    upstream.connect(targetPort, targetHost);
    pipe(client, upstream, link);
    pipe(upstream, client, link);
    const end = (): void => {
      links.delete(link);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;

  const proxy: FaultProxy = {
    port,
    get accepted() {
      return accepted;
    },
    get open() {
      return links.size;
    },
    fault(fault) {
      switch (fault.kind) {
        case 'silent':
          for (const link of links) {
            link.discard = true;
            link.silenced = true;
          }
          break;
        case 'drop':
          dropping = true;
          for (const link of links) link.discard = true;
          break;
        case 'latency':
          latencyMs = fault.ms;
          break;
        case 'cut':
          for (const link of links) {
            link.client.resetAndDestroy();
            link.upstream.destroy();
          }
          break;
      }
    },
    forward() {
      dropping = false;
      latencyMs = 0;
      for (const link of links) if (!link.silenced) link.discard = false;
    },
    async close() {
      for (const link of links) {
        link.client.destroy();
        link.upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  proxies.push(proxy);
  return proxy;
}

/** Closes every proxy started here (call in `afterAll`). */
export async function closeAllFaultProxies(): Promise<void> {
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
}
