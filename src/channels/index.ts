/**
 * The only place a Redis channel name is made.
 *
 * A channel is `<prefix>:<tenant>:<kind>[:<name>]`. Every part is checked against
 * {@link NAME_PATTERN}, which admits no ':' (the separator), no glob characters
 * (`*?[]`), no spaces and no control characters, so no name can escape its tenant or
 * reach another kind of channel. Tenants and user names come from verified token
 * claims; a publisher's `to` is validated here before it is used.
 */

/** Letters, digits, `.`, `_`, `-` and `@`; starts with a letter or digit; at most 128 characters. */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/;

/** Who a notification is addressed to; mirrors `enum Audience` in schema.graphql. */
export type Audience = 'USER' | 'STORE' | 'COMPANY';

export const AUDIENCES: readonly Audience[] = ['USER', 'STORE', 'COMPANY'];

/** The verified claims a channel is built from. */
export interface ChannelOwner {
  readonly name: string;
  readonly tenant: string;
  readonly stores: readonly string[];
}

/** Thrown when a name is not fit to be part of a channel; `message` says why. */
export class InvalidNameError extends Error {
  override readonly name = 'InvalidNameError';
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

/** A subscriber's channel together with the audience it carries. */
export interface SubscriberChannel {
  readonly channel: string;
  readonly audience: Audience;
}

/** Builds channel names under one prefix (`CHANNEL_PREFIX`). */
export interface ChannelNamer {
  /** The channel a publisher in `tenant` reaches with `audience` and `to` (validated here). */
  audienceChannel(tenant: string, audience: Audience, to: string): string;
  /** Every channel a subscriber hears: its user, each of its stores, its company. */
  subscriberChannels(owner: ChannelOwner): SubscriberChannel[];
  /** The channel on which one process collects delivery reports for its publishes. */
  deliveryReportChannel(processId: string): string;
}

export function createChannelNamer(prefix: string): ChannelNamer {
  assertValidName('channel prefix', prefix);
  const channel = (tenant: string, audience: Audience, to: string): string => {
    assertValidName('tenant', tenant);
    switch (audience) {
      case 'USER':
        return `${prefix}:${tenant}:user:${assertValidName('user name', to)}`;
      case 'STORE':
        return `${prefix}:${tenant}:store:${assertValidName('store id', to)}`;
      case 'COMPANY':
        if (to !== tenant) {
          throw new InvalidNameError(`a COMPANY notification must be sent to your own tenant "${tenant}"`);
        }
        return `${prefix}:${tenant}:company`;
    }
  };
  return {
    audienceChannel: channel,
    subscriberChannels: (owner) => [
      { channel: channel(owner.tenant, 'USER', owner.name), audience: 'USER' },
      ...owner.stores.map((store) => ({ channel: channel(owner.tenant, 'STORE', store), audience: 'STORE' as const })),
      { channel: channel(owner.tenant, 'COMPANY', owner.tenant), audience: 'COMPANY' },
    ],
    deliveryReportChannel: (processId) => `${prefix}:_reports:${assertValidName('process id', processId)}`,
  };
}

function printable(value: string): string {
  const shown = value.length > 40 ? `${value.slice(0, 40)}…` : value;
  // control characters escaped, so an error or log line cannot be forged
  return JSON.stringify(shown).slice(1, -1);
}
