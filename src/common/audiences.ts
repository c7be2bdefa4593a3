/**
 * Every audience a notification can be addressed to, declared once: what its `to` names,
 * the part of the channel it is heard on, which subscribers hear it, and whether it can
 * be pushed to devices. Channel names (names/), sending (core/send.ts), the seen-live
 * marks and the push queue read this table. `enum Audience` in schema.graphql and in
 * proto/herald/v1/notifications.proto (`AUDIENCE_<name>`) list the same names, which
 * test/unit/audiences.test.ts checks; adding an audience is a row here plus those two
 * enum values, and whatever it does that no row field says.
 */

/** Where a subscriber's own audiences come from. */
export type HeardBy =
  /** Its token's `sub`: one channel. */
  | 'name'
  /** Its token's `stores`: one channel each. */
  | 'stores'
  /** Its token's `tenant`: one channel. */
  | 'tenant'
  /** The topics it follows, read from the topic store when a subscription opens. */
  | 'follows';

export interface AudienceKind {
  /** What `to` names, as errors call it (`user name`, `store id`, …). */
  readonly to: string;
  /** The channel's and history stream's kind part: `<prefix>:{<tenant>}:<segment>[:<to>]`. */
  readonly segment: string;
  /**
   * True when `to` must be the publisher's own tenant, and the channel holds no name:
   * the audience is the tenant itself.
   */
  readonly ownTenant: boolean;
  /** Which subscribers hear it. */
  readonly heardBy: HeardBy;
  /**
   * Whether its notifications can be pushed to devices: it stands for users one can name
   * (a user, a topic's followers). Stores and companies have no member list to push to.
   */
  readonly pushed: boolean;
}

// prettier-ignore
export const AUDIENCE_KINDS = {
  /** One user: `to` is the user name (the `sub` claim of the user's token). */
  USER:    { to: 'user name', segment: 'user',    ownTenant: false, heardBy: 'name',    pushed: true },
  /** Every member of one store: `to` is a store id (listed in members' `stores` claim). */
  STORE:   { to: 'store id',  segment: 'store',   ownTenant: false, heardBy: 'stores',  pushed: false },
  /** The whole company: `to` is the tenant id (the `tenant` claim). */
  COMPANY: { to: 'tenant',    segment: 'company', ownTenant: true,  heardBy: 'tenant',  pushed: false },
  /** Every follower of a topic: `to` is the topic. */
  TOPIC:   { to: 'topic',     segment: 'topic',   ownTenant: false, heardBy: 'follows', pushed: true },
} as const satisfies Record<string, AudienceKind>;

/** Who a notification is addressed to; `enum Audience` in schema.graphql. */
export type Audience = keyof typeof AUDIENCE_KINDS;

export const AUDIENCES = Object.keys(AUDIENCE_KINDS) as readonly Audience[];

/** The audiences whose notifications can be pushed to devices. */
export type PushedAudience = { [A in Audience]: (typeof AUDIENCE_KINDS)[A]['pushed'] extends true ? A : never }[Audience];

export const PUSHED_AUDIENCES = AUDIENCES.filter((audience): audience is PushedAudience => AUDIENCE_KINDS[audience].pushed);

// Sets: both run once per broker message on the subscribe servers, where a Set costs
// about what the string comparisons it replaced did (7 ns against 5 ns a call on the
// build; a keyed load from the table, 9 ns).
const AUDIENCE_SET: ReadonlySet<unknown> = new Set(AUDIENCES);
const PUSHED_SET: ReadonlySet<unknown> = new Set(PUSHED_AUDIENCES);

export function isAudience(value: unknown): value is Audience {
  return AUDIENCE_SET.has(value);
}

export function isPushedAudience(value: unknown): value is PushedAudience {
  return PUSHED_SET.has(value);
}
