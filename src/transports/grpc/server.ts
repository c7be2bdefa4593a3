/**
 * A gRPC server (@grpc/grpc-js) with Herald's keepalive policy: it pings idle clients
 * and drops one that does not answer, and it enforces how often a client may ping with
 * no data sent to it (./ping-policy.ts): more often than `minPingIntervalMs`, more than
 * `maxPingStrikes` times in a row, and it gets GOAWAY `ENHANCE_YOUR_CALM` with
 * `too_many_pings`, as gRPC's keepalive spec (A8) says, and its connection is closed.
 *
 * Beside Herald's services every server answers `grpc.health.v1.Health` (./health.ts) and
 * server reflection (`grpc.reflection.v1` and `v1alpha`, from @grpc/reflection) for its
 * services and health, so `grpcurl`-style tools need no .proto file.
 */
import type { Http2Server } from 'node:http2';
import { ReflectionService } from '@grpc/reflection';
import { Server, ServerCredentials, setLogger, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Logger } from '../../common/logger.js';
import type { HeraldServer } from '../../common/server.js';
import type { GrpcKeepalive } from '../../config/index.js';
import { createHealthService } from './health.js';
import { createPingPolicy } from './ping-policy.js';
import { loadProtoDefinition } from './proto.js';

export interface GrpcServerOptions {
  services: ReadonlyArray<{ definition: ServiceDefinition; implementation: UntypedServiceImplementation }>;
  keepalive: GrpcKeepalive;
  /** Called first on `stop()`, to end open streams with a status before connections close. */
  onStop?: () => void;
  /** How long calls in flight may take to finish on `stop()` before they are cut, in ms. */
  drainMs: number;
  /** Whether the server can do its work now (the broker is ready): its health status. */
  isReady: () => boolean;
  logger: Logger;
}

export function createGrpcServer(options: GrpcServerOptions): HeraldServer {
  const { keepalive, logger } = options;
  routeGrpcLogs(logger);
  const pingPolicy = createPingPolicy({ keepalive, logger });
  const server = new Server({
    'grpc.keepalive_time_ms': keepalive.timeMs,
    'grpc.keepalive_timeout_ms': keepalive.timeoutMs,
    interceptors: [pingPolicy.interceptor],
  });
  for (const { definition, implementation } of options.services) server.addService(definition, implementation);
  const names = options.services.map(({ definition }) => serviceName(definition));
  const health = createHealthService({ services: names, isReady: options.isReady });
  server.addService(health.definition, health.implementation);
  new ReflectionService(loadProtoDefinition(), { services: [...names, HEALTH_SERVICE] }).addToServer(server);

  return {
    start(port, host = '0.0.0.0') {
      return new Promise((resolve, reject) => {
        server.bindAsync(`${host}:${port}`, ServerCredentials.createInsecure(), (error, boundPort) => {
          if (error) return reject(withSocketCode(error));
          // grpc-js enforces no ping policy of its own and keeps its HTTP/2 servers private;
          // reach its sessions to enforce one. The one grpc-js internal Herald touches, here
          // only: `Server#http2Servers` of @grpc/grpc-js 1.14.7, pinned exactly in
          // package.json; a version without it is logged and the policy goes unenforced.
          const http2Servers = (server as unknown as { http2Servers?: Map<Http2Server, unknown> }).http2Servers;
          if (http2Servers instanceof Map) {
            for (const http2Server of http2Servers.keys()) http2Server.on('session', pingPolicy.watch);
          } else {
            logger.warn('herald: this grpc-js version hides its HTTP/2 servers: client ping policy not enforced');
          }
          resolve(boundPort);
        });
      });
    },
    stop() {
      health.shutdown();
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

const HEALTH_SERVICE = 'grpc.health.v1.Health';

/** `herald.v1.NotificationFeed` from the paths of its methods (`/herald.v1.NotificationFeed/Feed`). */
function serviceName(definition: ServiceDefinition): string {
  const [method] = Object.values(definition);
  return method?.path.split('/')[1] ?? '';
}

/**
 * grpc-js reports a failed bind only in its message (`No address added out of total 1
 * resolved errors: [listen EADDRINUSE: …]`); give the error the socket's `code`, as Node's
 * own `listen` errors have, so the caller can say which setting to change.
 */
function withSocketCode(error: Error): Error {
  const code = /\blisten (E[A-Z]+)\b/.exec(error.message)?.[1];
  return code === undefined ? error : Object.assign(error, { code });
}

/**
 * grpc-js logs through its own logger (to stderr, prefixed `E `); send its lines to
 * Herald's. A failed bind is left out: it is also an error returned to `start`, which
 * reports it naming the variable to change. The logger is global in grpc-js: the last
 * server created sets it.
 */
function routeGrpcLogs(logger: Logger): void {
  const forward =
    (write: (message: string) => void) =>
    (message?: unknown, ...rest: unknown[]): void => {
      const text = [message, ...rest].map(String).join(' ');
      if (!text.startsWith('No address added out of total')) write(`herald: grpc-js: ${text}`);
    };
  setLogger({ error: forward((text) => logger.error(text)), info: forward((text) => logger.info(text)), debug: forward((text) => logger.info(text)) });
}
