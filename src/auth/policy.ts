/**
 * What a verified principal may subscribe to and publish to. Both servers (and every
 * transport) ask these functions; none decides on its own.
 */
import { AUDIENCE_KINDS, isAudience } from '../common/audiences.js';
import { Failure } from '../common/failures.js';
import type { Principal } from './principal.js';

/** The scope that lets a service publish inside its own tenant. */
export const PUBLISH_SCOPE = 'notifications:publish';

/** A refusal; `message` is safe to show to the client. */
export class ForbiddenError extends Failure {
  override readonly name = 'ForbiddenError';
  constructor(message: string) {
    super('FORBIDDEN', message);
  }
}

/** A subscriber may only subscribe as itself. */
export function authorizeSubscription(principal: Principal, userName: string): void {
  if (userName !== principal.name) {
    throw new ForbiddenError(`you may only subscribe to your own notifications ("${principal.name}")`);
  }
}

/** A user's read state is the user's own: nobody marks another user's notifications read. */
export function authorizeReadState(principal: Principal, userName: string): void {
  if (userName !== principal.name) {
    throw new ForbiddenError(`you may only mark your own notifications read ("${principal.name}")`);
  }
}

/**
 * Publishing needs {@link PUBLISH_SCOPE}, and stays inside the principal's tenant: a
 * notification to an audience that is the tenant itself (`COMPANY`) can only go to the
 * publisher's own.
 */
export function authorizePublish(principal: Principal, audience?: string, to?: string): void {
  if (!principal.scopes.has(PUBLISH_SCOPE)) {
    throw new ForbiddenError(`sending notifications needs the "${PUBLISH_SCOPE}" scope`);
  }
  if (isAudience(audience) && AUDIENCE_KINDS[audience].ownTenant && to !== principal.tenant) {
    throw new ForbiddenError(`a ${audience} notification must be sent to your own tenant "${principal.tenant}"`);
  }
}

/**
 * Whose devices a request manages: the principal's own, or — for a service with
 * {@link PUBLISH_SCOPE} — `userName`'s inside the principal's tenant (a backend that
 * registers its users' phones). Returns the user name to act for.
 */
export function authorizeDeviceOwner(principal: Principal, userName: string | null | undefined): string {
  if (userName == null || userName === principal.name) return principal.name;
  if (!principal.scopes.has(PUBLISH_SCOPE)) {
    throw new ForbiddenError(`you may only manage your own devices ("${principal.name}"); another user's needs the "${PUBLISH_SCOPE}" scope`);
  }
  return userName;
}

/**
 * A live connection's token may be replaced in-band (`refreshToken`) only by one for the
 * same principal: the same `sub` and `tenant`, else the connection would change hands
 * (refused for good), and the same `stores` and `scope`, which the connection's open
 * subscriptions were opened on (refused, but a reconnect with the new token opens them
 * afresh). Stores and scopes compare as sets. Throws {@link ForbiddenError} naming the
 * claims that differ; the messages name no value, only claims.
 */
export function authorizeTokenRefresh(current: Principal, next: Principal): void {
  const owner = differing([
    ['sub', current.name === next.name],
    ['tenant', current.tenant === next.tenant],
  ]);
  if (owner !== undefined) {
    throw new ForbiddenError(`${owner} of this connection's token and the new one differ: a connection's token can only be replaced by one for the same user and tenant`);
  }
  const grants = differing([
    ['stores', sameMembers(current.stores, next.stores)],
    ['scope', sameMembers(current.scopes, next.scopes)],
  ]);
  if (grants !== undefined) throw new ForbiddenError(`${grants} of this connection's token and the new one differ: reconnect with the new token`);
}

/** The claims whose check failed, as `the "a" and "b" claims`; undefined when none did. */
function differing(checks: ReadonlyArray<readonly [claim: string, same: boolean]>): string | undefined {
  const claims = checks.filter(([, same]) => !same).map(([claim]) => `"${claim}"`);
  return claims.length === 0 ? undefined : `the ${claims.join(' and ')} claims`;
}

/** Whether `a` and `b` hold the same members, in whatever order (the principal's are without repeats). */
function sameMembers(a: Iterable<string>, b: Iterable<string>): boolean {
  const left = new Set(a);
  const right = new Set(b);
  return left.size === right.size && [...left].every((member) => right.has(member));
}
