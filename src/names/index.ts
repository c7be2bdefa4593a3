/**
 * The only place a Redis channel name is made.
 *
 * A channel is `<prefix>:{<tenant>}:<kind>[:<name>]`; a tenant's history streams, counter,
 * idempotency and read-state keys carry the same `{tenant}` hash tag, so on a Redis
 * Cluster all of them (channels included, for sharded Pub/Sub) live in one hash slot and
 * the publish script, which touches them together, stays atomic. Every part is checked against
 * {@link NAME_PATTERN}, which admits no ':' (the separator), no glob characters
 * (`*?[]`), no spaces and no control characters, so no name can escape its tenant or
 * reach another kind of channel. Tenants and user names come from verified token
 * claims; a publisher's `to` is validated here before it is used.
 */
import { Failure } from '../common/failures.js';
import { AUDIENCE_KINDS, AUDIENCES, type Audience } from '../common/audiences.js';

/** Letters, digits, `.`, `_`, `-` and `@`; starts with a letter or digit; at most 128 characters. */
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/;

/** The verified claims a channel is built from. */
export interface ChannelOwner {
  readonly name: string;
  readonly tenant: string;
  readonly stores: readonly string[];
}

/** Thrown when a name is not fit to be part of a channel; `message` says why. */
export class InvalidNameError extends Failure {
  override readonly name = 'InvalidNameError';
  constructor(message: string) {
    super('BAD_USER_INPUT', message);
  }
}

export function isValidName(value: unknown): value is string {
  return typeof value === 'string' && NAME_PATTERN.test(value);
}

/**
 * Returns `value` if it is a valid name, else throws {@link InvalidNameError} naming
 * `what` (e.g. `'store id'`) and the rule it broke.
 */
export function assertValidName(what: string, value: unknown): string {
  if (isValidName(value)) return value;
  if (typeof value !== 'string') throw new InvalidNameError(`${what} must be a string`);
  if (value.length === 0) throw new InvalidNameError(`${what} must not be empty`);
  if (value.length > 128) throw new InvalidNameError(`${what} is longer than 128 characters`);
  throw new InvalidNameError(
    `${what} "${printable(value)}" may only hold letters, digits, '.', '_', '-' and '@', and must start with a letter or digit`,
  );
}

/** Where one audience's notifications go: the Pub/Sub channel and the history stream. */
export interface Destination {
  /** The Redis Pub/Sub channel (live delivery); `{tenant}`-tagged like the stream, so a Cluster keeps both in one slot. */
  readonly channel: string;
  /** The Redis stream key (history); `{tenant}` hash tag keeps a tenant's keys in one cluster slot. */
  readonly stream: string;
}

/** Builds channel names and keys under one prefix (`CHANNEL_PREFIX`). */
export interface Namer {
  /** The channel and history stream of `audience`/`to` inside `tenant` (validated here). */
  destination(tenant: string, audience: Audience, to: string): Destination;
  /**
   * Everything a subscriber's token makes it hear, in the audience table's order: its
   * user, each of its stores, its company (followed topics are added by the caller).
   */
  subscriberDestinations(owner: ChannelOwner): Destination[];
  /** The hash holding a tenant's history epoch and sequence. */
  tenantKey(tenant: string): string;
  /** Where a publisher's idempotency key is remembered (validated here). */
  idempotencyKey(tenant: string, sender: string, key: string): string;
  /** The channel on which one process collects delivery reports for its publishes. */
  deliveryReportChannel(processId: string): string;
  /** Where a user's read position (the id of the newest notification read) is kept. */
  readStateKey(tenant: string, user: string): string;
}

export function createNamer(prefix: string): Namer {
  assertValidName('channel prefix', prefix);
  /** `<segment>[:<name>]`, the part channel and stream share (the audience table says which). */
  const suffix = (tenant: string, audience: Audience, to: string): string => {
    assertValidName('tenant', tenant);
    const kind = AUDIENCE_KINDS[audience];
    if (!kind.ownTenant) return `${kind.segment}:${assertValidName(kind.to, to)}`;
    if (to !== tenant) throw new InvalidNameError(`a ${audience} notification must be sent to your own tenant "${tenant}"`);
    return kind.segment;
  };
  const destination = (tenant: string, audience: Audience, to: string): Destination => {
    const tail = suffix(tenant, audience, to);
    return { channel: `${prefix}:{${tenant}}:${tail}`, stream: `${prefix}:{${tenant}}:history:${tail}` };
  };
  /** The names a subscriber's token gives each audience it hears; followed topics come from the topic store. */
  const heard = (owner: ChannelOwner, audience: Audience): readonly string[] => {
    switch (AUDIENCE_KINDS[audience].heardBy) {
      case 'name':
        return [owner.name];
      case 'stores':
        return owner.stores;
      case 'tenant':
        return [owner.tenant];
      case 'follows':
        return [];
    }
  };
  return {
    destination,
    subscriberDestinations: (owner) => AUDIENCES.flatMap((audience) => heard(owner, audience).map((to) => destination(owner.tenant, audience, to))),
    tenantKey: (tenant) => `${prefix}:{${assertValidName('tenant', tenant)}}:meta`,
    idempotencyKey: (tenant, sender, key) =>
      `${prefix}:{${assertValidName('tenant', tenant)}}:idempotency:${assertValidName('sender', sender)}:${assertValidName('idempotencyKey', key)}`,
    deliveryReportChannel: (processId) => `${prefix}:_reports:${assertValidName('process id', processId)}`,
    readStateKey: (tenant, user) => `${prefix}:{${assertValidName('tenant', tenant)}}:read:user:${assertValidName('user name', user)}`,
  };
}

function printable(value: string): string {
  const shown = value.length > 40 ? `${value.slice(0, 40)}…` : value;
  // control characters escaped, so an error or log line cannot be forged
  return JSON.stringify(shown).slice(1, -1);
}
