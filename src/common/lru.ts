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
 */
export interface LruCache<K, V> {
  get(key: K): V | undefined;
  set(key: K, value: V): void;
  delete(key: K): void;
}

interface Entry<V> {
  readonly value: V;
  /** The insertion count when the entry last went in at the end. */
  stamp: number;
}

export function createLruCache<K, V>(maxEntries: number): LruCache<K, V> {
  const entries = new Map<K, Entry<V>>();
  const refreshAfter = Math.max(1, Math.floor(maxEntries / 2));
  let inserted = 0;
  const insert = (key: K, entry: Entry<V>): void => {
    entries.delete(key);
    entry.stamp = ++inserted;
    entries.set(key, entry);
  };
  return {
    get(key) {
      const entry = entries.get(key);
      if (entry === undefined) return undefined;
      if (inserted - entry.stamp >= refreshAfter) insert(key, entry);
      return entry.value;
    },
    set(key, value) {
      if (maxEntries <= 0) return;
      insert(key, { value, stamp: 0 });
      if (entries.size > maxEntries) entries.delete(entries.keys().next().value as K);
    },
    delete(key) {
      entries.delete(key);
    },
  };
}
