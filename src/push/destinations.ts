/**
 * Where a send goes, as the per-destination limit and the circuit breaker count it: the
 * origin (scheme, host, port) of a webhook URL or a Web Push endpoint, within its tenant.
 *
 * Within its tenant: the same origin can serve many tenants (a hosting platform routing
 * webhooks by path, a browser vendor's push service), and one tenant's dead path there
 * must neither hold the slots nor trip the breaker of another tenant's live one.
 * FCM has none: it is the push service the operator configured, shared by every tenant,
 * reached through its own HTTP/2 pool; only the tenant's and the worker's limits apply.
 */
import { targetOf } from './device-kinds.js';
import type { Device } from './devices.js';

/** The destination key of `device` in `tenant`, or undefined for FCM (its kind has no target). */
export function destinationOf(tenant: string, device: Device): string | undefined {
  const target = targetOf(device);
  return target === undefined ? undefined : `${tenant} ${originOf(target.url)}`;
}

/** The URL's origin; the whole string if it does not parse (stored devices were validated, so never in practice). */
function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
}
