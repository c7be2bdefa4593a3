/**
 * Loads `proto/herald/v1/notifications.proto` (and gRPC's standard
 * `proto/grpc/health/v1/health.proto`) at start-up with @grpc/proto-loader: the .proto
 * stays the one source (no generated code to keep in step), and the few message shapes
 * Herald handles are typed here by hand.
 */
import { fileURLToPath } from 'node:url';
import { loadPackageDefinition, type GrpcObject, type ServiceClientConstructor } from '@grpc/grpc-js';
import { loadSync, type PackageDefinition } from '@grpc/proto-loader';
import type { Audience } from '../../common/audiences.js';

// Resolved from this module, so the same relative path holds from src/grpc and dist/grpc.
// fileURLToPath, not URL#pathname: a checkout under a path with spaces or non-ASCII
// characters would otherwise be percent-encoded.
const PROTO_DIR = fileURLToPath(new URL('../../../proto/', import.meta.url));
/** The .proto files, relative to {@link PROTO_DIR}. */
const PROTO_FILES = ['herald/v1/notifications.proto', 'grpc/health/v1/health.proto'];

/** How messages look in JavaScript: camelCase fields, enums as their names, int64 as number. */
const LOADER_OPTIONS = { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true } as const;

/** The proto's `enum Audience`: each of the audience table's names, `AUDIENCE_`-prefixed. */
export type GrpcAudience = 'AUDIENCE_UNSPECIFIED' | `AUDIENCE_${Audience}`;

export type GrpcPushPolicy = 'PUSH_POLICY_UNSPECIFIED' | 'PUSH_POLICY_WHEN_OFFLINE' | 'PUSH_POLICY_ALWAYS' | 'PUSH_POLICY_NEVER';

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
  /** Present when set. */
  category?: string;
  critical?: boolean;
}

export type FeedResponse = { notification: GrpcNotification } | { historyGap: { reason: string } };

export type GrpcPushPriority = 'PUSH_PRIORITY_UNSPECIFIED' | 'PUSH_PRIORITY_HIGH' | 'PUSH_PRIORITY_NORMAL';

export interface SendRequest {
  to: string;
  text: string;
  audience: GrpcAudience;
  idempotencyKey: string;
  push: GrpcPushPolicy;
  collapseKey: string;
  /** proto3 `optional`: absent when the caller did not set it. */
  ttl?: number | null;
  priority: GrpcPushPriority;
  /** Empty: none. Absent from an older client. */
  category?: string;
  critical?: boolean;
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

export type ServingStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

export interface HealthCheckRequest {
  service: string;
}

export interface HealthCheckResponse {
  status: ServingStatus;
}

export interface HealthV1 {
  Health: ServiceClientConstructor;
}

let definition: PackageDefinition | undefined;
let loaded: { herald: { v1: HeraldV1 }; grpc: { health: { v1: HealthV1 } } } | undefined;

/** Both .proto files, parsed once: what server reflection describes. */
export function loadProtoDefinition(): PackageDefinition {
  definition ??= loadSync(PROTO_FILES, { ...LOADER_OPTIONS, includeDirs: [PROTO_DIR] });
  return definition;
}

function loadProtos(): NonNullable<typeof loaded> {
  loaded ??= loadPackageDefinition(loadProtoDefinition()) as GrpcObject & NonNullable<typeof loaded>;
  return loaded;
}

/** The `herald.v1` package: service definitions for servers, constructors for clients. */
export function loadHeraldProto(): HeraldV1 {
  return loadProtos().herald.v1;
}

/** The `grpc.health.v1` package. */
export function loadHealthProto(): HealthV1 {
  return loadProtos().grpc.health.v1;
}

/** GraphQL's push policy names from the proto's. */
export function fromGrpcPushPolicy(policy: GrpcPushPolicy | string): string {
  return policy === 'PUSH_POLICY_UNSPECIFIED' || policy === '' ? 'WHEN_OFFLINE' : policy.replace(/^PUSH_POLICY_/, '');
}

/** GraphQL's push priority names from the proto's; undefined when unspecified. */
export function fromGrpcPushPriority(priority: GrpcPushPriority | string): string | undefined {
  return priority === 'PUSH_PRIORITY_UNSPECIFIED' || priority === '' ? undefined : priority.replace(/^PUSH_PRIORITY_/, '');
}

/** GraphQL's audience names from the proto's. */
export function fromGrpcAudience(audience: GrpcAudience | string): string {
  return audience === 'AUDIENCE_UNSPECIFIED' || audience === '' ? 'USER' : audience.replace(/^AUDIENCE_/, '');
}

export function toGrpcAudience(audience: Audience): GrpcAudience {
  return `AUDIENCE_${audience}`;
}
