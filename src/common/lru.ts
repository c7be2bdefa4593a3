/**
 * A bounded map that drops its least recently used entry first. `Map` keeps insertion
 * order, so an entry is made recent by re-inserting it at the end.
 *
 * A hit re-inserts its entry only once the entry has drifted into the older half (half
 * the capacity's worth of entries went in after it); a hit on a recent entry changes
 * nothing. Deletes leave holes in a `Map`'s table, which V8 clears by rebuilding the
 * table, in the old generation when the `Map` is long-lived; re-inserting on every hit
 * (a hot token, one document for every request) was a steady stream of old-generation
 * garbage, and a mark-compact every second or two under load. The order is the same as exact
 * LRU's for what matters here: an entry hit since it was last among the newer half
 * is never the one dropped.
 *
 * With {@link LruOptions.maxWeight}, the entries' weights (say, the bytes each holds)
 * are bounded too: the oldest entries go until the sum fits, and an entry heavier than
 * the whole bound is never kept. The older half is then judged by weight as well: a hit
 * re-inserts an entry once half of `maxWeight` went in after it, as a few heavy entries
 * can push it out long before half the capacity's count has.
 */
export interface LruCache<K, V> {
  get(key: K): V | undefined;
  set(key: K, value: V): void;
  delete(key: K): void;
  /** The sum of the kept entries' weights (their count without `weigh`). */
  readonly weight: number;
  /** How many entries are kept. */
  readonly size: number;
}

export interface LruOptions<K, V> {
  /**
   * Most total weight kept, in the unit `weigh` returns (bytes, for a cache of
   * documents). Setting an entry drops the least recently used ones until the rest fit.
   * @default Infinity (bounded by the entry count only)
   */
  maxWeight?: number;
  /**
   * The weight of one entry, computed once when it is set: a positive number, an
   * upper bound of what keeping it costs.
   * @default () => 1
   */
  weigh?: (key: K, value: V) => number;
}

interface Entry<V> {
  readonly value: V;
  readonly weight: number;
  /** The insertion count when the entry last went in at the end. */
  stamp: number;
  /** The total weight inserted, likewise. */
  weightStamp: number;
}

export function createLruCache<K, V>(maxEntries: number, options: LruOptions<K, V> = {}): LruCache<K, V> {
  const maxWeight = options.maxWeight ?? Infinity;
  const weigh = options.weigh ?? (() => 1);
  const entries = new Map<K, Entry<V>>();
  const refreshAfter = Math.max(1, Math.floor(maxEntries / 2));
  const refreshAfterWeight = maxWeight / 2;
  let inserted = 0;
  let insertedWeight = 0;
  let weight = 0;
  const insert = (key: K, entry: Entry<V>): void => {
    entries.delete(key);
    entry.stamp = ++inserted;
    insertedWeight += entry.weight;
    entry.weightStamp = insertedWeight;
    entries.set(key, entry);
  };
  const remove = (key: K): void => {
    const entry = entries.get(key);
    if (entry === undefined) return;
    entries.delete(key);
    weight -= entry.weight;
  };
  return {
    get(key) {
      const entry = entries.get(key);
      if (entry === undefined) return undefined;
      if (inserted - entry.stamp >= refreshAfter || insertedWeight - entry.weightStamp >= refreshAfterWeight) insert(key, entry);
      return entry.value;
    },
    set(key, value) {
      remove(key);
      const entryWeight = weigh(key, value);
      if (maxEntries <= 0 || entryWeight > maxWeight) return;
      insert(key, { value, weight: entryWeight, stamp: 0, weightStamp: 0 });
      weight += entryWeight;
      while (entries.size > maxEntries || weight > maxWeight) remove(entries.keys().next().value as K);
    },
    delete: remove,
    get weight() {
      return weight;
    },
    get size() {
      return entries.size;
    },
  };
}
