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

  it('holds nothing with a size of 0', () => {
    const cache = createLruCache<string, number>(0);
    cache.set('a', 1);
    expect(cache.get('a')).toBeUndefined();
  });
});
