/** createLruCache: bounded, least recently used out first. */
import { describe, expect, it } from 'vitest';
import { createLruCache } from '../../src/common/lru.js';

describe('createLruCache', () => {
  it('drops the least recently used entry, where a hit counts as a use', () => {
    const cache = createLruCache<string, number>(2);
    cache.set('a', 1);
    cache.set('b', 2);
    expect(cache.get('a')).toBe(1); // now b is the oldest
    cache.set('c', 3);
    expect([cache.get('a'), cache.get('b'), cache.get('c')]).toEqual([1, undefined, 3]);
    cache.delete('a');
    expect(cache.get('a')).toBeUndefined();
  });

  it('keeps a hit entry through half the capacity of new entries, then drops the least recently used', () => {
    const cache = createLruCache<number, number>(10);
    for (let n = 0; n < 10; n++) cache.set(n, n);
    // 0 and 1 are old (9 and 8 entries went in after them): a hit makes them recent.
    expect([cache.get(0), cache.get(1)]).toEqual([0, 1]);
    for (let n = 10; n < 18; n++) cache.set(n, n);
    // Eight new entries pushed out 2 to 9, oldest first; 0 and 1 were used since.
    expect([0, 1, 2, 9, 10, 17].map((key) => cache.get(key))).toEqual([0, 1, undefined, undefined, 10, 17]);
  });

  it('holds nothing with a size of 0', () => {
    const cache = createLruCache<string, number>(0);
    cache.set('a', 1);
    expect(cache.get('a')).toBeUndefined();
  });
});

describe('createLruCache with weights', () => {
  const byLength = { weigh: (_key: string, value: string) => value.length };

  it('keeps the sum of weights under maxWeight, dropping the least recently used first', () => {
    const cache = createLruCache<string, string>(100, { ...byLength, maxWeight: 10 });
    cache.set('a', 'xxxx');
    cache.set('b', 'xxxx');
    expect(cache.weight).toBe(8);
    cache.set('c', 'xxxx'); // 12 > 10: a goes
    expect([cache.get('a'), cache.get('b'), cache.get('c')]).toEqual([undefined, 'xxxx', 'xxxx']);
    expect(cache.weight).toBe(8);
    cache.set('d', 'xxxxxxxxx'); // 9: b and c go
    expect([cache.size, cache.weight, cache.get('d')]).toEqual([1, 9, 'xxxxxxxxx']);
  });

  it('never keeps an entry heavier than the whole bound, and forgets what it replaces', () => {
    const cache = createLruCache<string, string>(100, { ...byLength, maxWeight: 10 });
    cache.set('a', 'xx');
    cache.set('a', 'x'.repeat(11));
    expect([cache.get('a'), cache.size, cache.weight]).toEqual([undefined, 0, 0]);
    cache.set('b', 'xxx');
    cache.set('b', 'xxxxx');
    expect([cache.get('b'), cache.weight]).toEqual(['xxxxx', 5]);
    cache.delete('b');
    expect([cache.size, cache.weight]).toEqual([0, 0]);
  });

  it('stays within its bound through a long run of distinct entries, the hot one kept', () => {
    const cache = createLruCache<string, string>(1000, { ...byLength, maxWeight: 1000 });
    cache.set('hot', 'h');
    for (let n = 0; n < 10_000; n++) {
      cache.set(`k${n}`, 'x'.repeat(1 + (n % 50)));
      expect(cache.get('hot')).toBe('h'); // a hit between every insert keeps it in the newer half
      expect(cache.weight).toBeLessThanOrEqual(1000);
    }
  });
});
