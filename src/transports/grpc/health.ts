/**
 * `grpc.health.v1.Health`, gRPC's standard health checking protocol
 * (https://github.com/grpc/grpc/blob/master/doc/health-checking.md), for Kubernetes gRPC
 * probes, grpc-health-probe and load balancers. The server as a whole (service `""`) and
 * each service it serves are SERVING while the broker is ready, NOT_SERVING while it is
 * not, and NOT_SERVING from the moment the server starts stopping.
 *
 * Written here rather than taken from the grpc-health-check package: that one cannot end
 * its Watch streams, and a graceful gRPC shutdown waits for every open call, so each
 * watching probe would hold up the server's stop until it is forced.
 */
import {
  status,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { loadHealthProto, type HealthCheckRequest, type HealthCheckResponse, type ServingStatus } from './proto.js';

export interface HealthServiceOptions {
  /** Fully-qualified names of the services this server serves, e.g. `herald.v1.NotificationFeed`. */
  services: readonly string[];
  /** Whether the server can do its work now (the broker is ready). */
  isReady: () => boolean;
  /**
   * How often readiness is read while a Watch stream is open: a change reaches the
   * watchers within this. No timer runs while nobody watches.
   * @default 1000 (ms)
   */
  watchIntervalMs?: number;
}

export interface HealthService {
  readonly definition: ServiceDefinition;
  readonly implementation: UntypedServiceImplementation;
  /** NOT_SERVING from now on: tells every watcher, then ends its stream with UNAVAILABLE. */
  shutdown(): void;
}

type WatchCall = ServerWritableStream<HealthCheckRequest, HealthCheckResponse>;

export function createHealthService(options: HealthServiceOptions): HealthService {
  const known = new Set(['', ...options.services]);
  const watchIntervalMs = options.watchIntervalMs ?? 1000;
  let stopping = false;
  const current = (): ServingStatus => (!stopping && options.isReady() ? 'SERVING' : 'NOT_SERVING');

  /** Each open Watch call of a known service, and the status it was sent last. */
  const watchers = new Map<WatchCall, ServingStatus>();
  /** Watch calls of unknown services: sent SERVICE_UNKNOWN once, kept open as the protocol says. */
  const unknownWatchers = new Set<WatchCall>();
  let timer: NodeJS.Timeout | undefined;

  const tellWatchers = (): void => {
    const now = current();
    for (const [call, sent] of watchers) {
      if (sent === now) continue;
      watchers.set(call, now);
      call.write({ status: now });
    }
  };
  const forget = (call: WatchCall): void => {
    watchers.delete(call);
    unknownWatchers.delete(call);
    if (watchers.size === 0 && timer !== undefined) {
      clearInterval(timer);
      timer = undefined;
    }
  };

  const check = (call: ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>, callback: sendUnaryData<HealthCheckResponse>): void => {
    if (!known.has(call.request.service)) {
      callback({ code: status.NOT_FOUND, details: `unknown service "${call.request.service}"` });
      return;
    }
    callback(null, { status: current() });
  };

  const watch = (call: WatchCall): void => {
    if (stopping) {
      call.emit('error', { code: status.UNAVAILABLE, details: 'server shutting down' });
      return;
    }
    call.once('cancelled', () => forget(call));
    if (!known.has(call.request.service)) {
      unknownWatchers.add(call);
      call.write({ status: 'SERVICE_UNKNOWN' });
      return;
    }
    const now = current();
    watchers.set(call, now);
    call.write({ status: now });
    timer ??= setInterval(tellWatchers, watchIntervalMs).unref();
  };

  const list = (_call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<{ statuses: Record<string, HealthCheckResponse> }>): void => {
    const now = current();
    callback(null, { statuses: Object.fromEntries([...known].map((service) => [service, { status: now }])) });
  };

  return {
    definition: loadHealthProto().Health.service,
    implementation: { check, watch, list },
    shutdown() {
      if (stopping) return;
      stopping = true;
      tellWatchers();
      for (const call of [...watchers.keys(), ...unknownWatchers]) {
        forget(call);
        // Any status but UNIMPLEMENTED tells a health client to retry, with backoff, elsewhere.
        call.emit('error', { code: status.UNAVAILABLE, details: 'server shutting down' });
      }
    },
  };
}
