/** Who a verified token speaks for, and when it stops. */

/** The verified identity behind a token. */
export interface Principal {
  /** `sub`: the user's (or service's) name. */
  readonly name: string;
  /** `tenant`: the company every channel of this principal lives in. */
  readonly tenant: string;
  /** `stores`: store ids the user belongs to. */
  readonly stores: readonly string[];
  /** `scope`, split on spaces. */
  readonly scopes: ReadonlySet<string>;
  /** `exp`, in milliseconds since the epoch. */
  readonly expiresAt: number;
}

/** True once the principal's token has expired. */
export function isExpired(principal: Principal, now = Date.now()): boolean {
  return now >= principal.expiresAt;
}
