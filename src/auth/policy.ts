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
