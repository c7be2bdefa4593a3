/**
 * A gRPC server (@grpc/grpc-js) with Herald's keepalive policy: it pings idle clients
 * and drops one that does not answer, and it enforces how often a client may ping —
 * a client that pings more often than `minPingIntervalMs`, more than `maxPingStrikes`
 * times in a row, gets GOAWAY `ENHANCE_YOUR_CALM` with `too_many_pings`, as gRPC's
 * keepalive spec (A8) says, and its connection is closed.
 */
import { constants as http2Constants, type Http2Server, type ServerHttp2Session } from 'node:http2';
import { Server, ServerCredentials, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Logger } from '../common/logger.js';
import type { HeraldServer } from '../common/server.js';

export interface GrpcKeepalive {
  /**
   * How often the server pings a client's connection to learn that it is still there.
   * @default 30000 (ms)
   */
  timeMs: number;
  /**
   * How long a ping may go unanswered before the connection (and every stream on it) is
   * closed.
   * @default 10000 (ms)
   */
  timeoutMs: number;
  /**
   * The shortest interval at which a client may ping. Pings sooner than this are strikes.
   * @default 10000 (ms)
   */
  minPingIntervalMs: number;
  /**
   * Strikes in a row tolerated; one more and the client gets GOAWAY `too_many_pings`.
   * @default 2
   */
  maxPingStrikes: number;
}

export const DEFAULT_GRPC_KEEPALIVE: GrpcKeepalive = { timeMs: 30_000, timeoutMs: 10_000, minPingIntervalMs: 10_000, maxPingStrikes: 2 };

export interface GrpcServerOptions {
  services: ReadonlyArray<{ definition: ServiceDefinition; implementation: UntypedServiceImplementation }>;
  keepalive: GrpcKeepalive;
  /** Called first on `stop()`, to end open streams with a status before connections close. */
  onStop?: () => void;
  /** How long calls in flight may take to finish on `stop()` before they are cut, in ms. */
  drainMs: number;
  logger: Logger;
}

const TOO_MANY_PINGS = Buffer.from('too_many_pings');

export function createGrpcServer(options: GrpcServerOptions): HeraldServer {
  const { keepalive, logger } = options;
  const server = new Server({
    'grpc.keepalive_time_ms': keepalive.timeMs,
    'grpc.keepalive_timeout_ms': keepalive.timeoutMs,
    'grpc.keepalive_permit_without_calls': 1,
  });
  for (const { definition, implementation } of options.services) server.addService(definition, implementation);

  const enforcePingPolicy = (session: ServerHttp2Session): void => {
    let lastPing = 0;
    let strikes = 0;
    session.on('ping', () => {
      const now = Date.now();
      strikes = now - lastPing < keepalive.minPingIntervalMs ? strikes + 1 : 0;
      lastPing = now;
      if (strikes <= keepalive.maxPingStrikes) return;
      logger.warn(`herald: gRPC client pinged more often than every ${keepalive.minPingIntervalMs} ms: GOAWAY too_many_pings`);
      session.goaway(http2Constants.NGHTTP2_ENHANCE_YOUR_CALM, 0, TOO_MANY_PINGS);
      // Let the GOAWAY frame go out before the connection closes.
      setTimeout(() => session.destroy(), 100).unref();
    });
  };

  return {
    start(port, host = '0.0.0.0') {
      return new Promise((resolve, reject) => {
        server.bindAsync(`${host}:${port}`, ServerCredentials.createInsecure(), (error, boundPort) => {
          if (error) return reject(error);
          // grpc-js enforces no ping policy of its own and keeps its HTTP/2 servers private;
          // reach its sessions to enforce one. Pinned grpc-js version: see package.json.
          const http2Servers = (server as unknown as { http2Servers?: Map<Http2Server, unknown> }).http2Servers;
          if (http2Servers instanceof Map) {
            for (const http2Server of http2Servers.keys()) http2Server.on('session', enforcePingPolicy);
          } else {
            logger.warn('herald: this grpc-js version hides its HTTP/2 servers: client ping policy not enforced');
          }
          resolve(boundPort);
        });
      });
    },
    stop() {
      options.onStop?.();
      return new Promise((resolve) => {
        const force = setTimeout(() => server.forceShutdown(), options.drainMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
    },
  };
}
