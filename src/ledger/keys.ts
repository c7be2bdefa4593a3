/**
 * The only place a ledger key is made: `<prefix>:{<tenant>}:ledger:<notification id>`, a
 * LIST of event JSON, and beside it `…:dropped`, how many events the bound turned away.
 * Both carry the tenant's hash tag, like its history, so on a Cluster they share the slot
 * of the tenant's publish script and of every other ledger of the tenant (one script
 * call writes a tenant's batch).
 *
 * Every part is validated, so no tenant or id can reach another tenant's keys or another
 * kind of key.
 */
import { assertValidName, InvalidNameError } from '../names/index.js';

/** A notification id as the publish path makes it (`<epoch>_<ms>-<seq>`), or a test's own: no `:`. */
const NOTIFICATION_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export interface LedgerKeys {
  /** The notification's timeline (a LIST, oldest first). */
  ledger(tenant: string, notificationId: string): string;
  /** How many events were not kept (a counter, with the ledger's TTL). */
  dropped(tenant: string, notificationId: string): string;
  /** The same counter, from a key {@link LedgerKeys.ledger} made (already checked). */
  droppedOf(ledgerKey: string): string;
  /** What the publish script puts the id after: `<prefix>:{<tenant>}:ledger:`. */
  prefixOf(tenant: string): string;
}

export function createLedgerKeys(prefix: string): LedgerKeys {
  assertValidName('channel prefix', prefix);
  const prefixOf = (tenant: string): string => `${prefix}:{${assertValidName('tenant', tenant)}}:ledger:`;
  const ledger = (tenant: string, notificationId: string): string => `${prefixOf(tenant)}${assertLedgerId(notificationId)}`;
  const droppedOf = (ledgerKey: string): string => `${ledgerKey}:dropped`;
  return {
    ledger,
    dropped: (tenant, notificationId) => droppedOf(ledger(tenant, notificationId)),
    droppedOf,
    prefixOf,
  };
}

/** Whether `value` can be a notification id (the shape the publish path gives). */
export function isNotificationId(value: unknown): value is string {
  return typeof value === 'string' && NOTIFICATION_ID_PATTERN.test(value);
}

function assertLedgerId(value: unknown): string {
  if (isNotificationId(value)) return value;
  throw new InvalidNameError('notification id must be 1-128 letters, digits, ".", "_" or "-"');
}
