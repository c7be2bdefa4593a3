/**
 * Notification ids are `<epoch>_<ms>-<seq>`: ordered within one epoch (one history).
 * The page compares them to know what is read and what is newer.
 */
interface ParsedId {
  readonly epoch: string;
  readonly ms: number;
  readonly seq: number;
}

function parse(id: string): ParsedId | undefined {
  const match = /^([A-Za-z0-9]+)_(\d+)-(\d+)$/.exec(id);
  return match ? { epoch: match[1] ?? '', ms: Number(match[2]), seq: Number(match[3]) } : undefined;
}

/** Whether `id` is at or before `readUpTo` in the same history. */
export function isAtOrBefore(id: string, readUpTo: string | null | undefined): boolean {
  const a = parse(id);
  const b = readUpTo ? parse(readUpTo) : undefined;
  if (!a || !b || a.epoch !== b.epoch) return false;
  return a.ms < b.ms || (a.ms === b.ms && a.seq <= b.seq);
}
