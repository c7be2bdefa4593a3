/**
 * Loads `proto/herald/v1/notifications.proto` at start-up with @grpc/proto-loader: the
 * .proto stays the one source (no generated code to keep in step), and the few message
 * shapes Herald handles are typed here by hand.
 */
import { loadPackageDefinition, type GrpcObject, type ServiceClientConstructor } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

export const PROTO_PATH = new URL('../../proto/herald/v1/notifications.proto', import.meta.url).pathname;

/** How messages look in JavaScript: camelCase fields, enums as their names, int64 as number. */
export const LOADER_OPTIONS = { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true } as const;

export type GrpcAudience = 'AUDIENCE_UNSPECIFIED' | 'AUDIENCE_USER' | 'AUDIENCE_STORE' | 'AUDIENCE_COMPANY';

export interface FeedRequest {
  userName: string;
  since: string;
}

export interface GrpcNotification {
  id: string;
  text: string;
  timestamp: number;
  audience: GrpcAudience;
  sender: string;
}

export type FeedResponse = { notification: GrpcNotification } | { historyGap: { reason: string } };

export interface SendRequest {
  to: string;
  text: string;
  audience: GrpcAudience;
  idempotencyKey: string;
}

export interface SendResponse {
  id: string;
  receivedUsers: number;
  duplicate: boolean;
}

export interface HeraldV1 {
  NotificationFeed: ServiceClientConstructor;
  NotificationPublisher: ServiceClientConstructor;
}

let loaded: HeraldV1 | undefined;

/** The `herald.v1` package (read once): service definitions for servers, constructors for clients. */
export function loadHeraldProto(): HeraldV1 {
  if (!loaded) {
    const root = loadPackageDefinition(loadSync(PROTO_PATH, LOADER_OPTIONS)) as GrpcObject & { herald: { v1: HeraldV1 } };
    loaded = root.herald.v1;
  }
  return loaded;
}

/** GraphQL's audience names from the proto's. */
export function fromGrpcAudience(audience: GrpcAudience | string): string {
  return audience === 'AUDIENCE_UNSPECIFIED' || audience === '' ? 'USER' : audience.replace(/^AUDIENCE_/, '');
}

export function toGrpcAudience(audience: string): GrpcAudience {
  return `AUDIENCE_${audience}` as GrpcAudience;
}
