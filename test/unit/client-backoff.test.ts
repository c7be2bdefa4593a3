/** @herald/client: full-jitter reconnect delays, 0.5 s to 20 s, harder after an overload close. */
import { describe, expect, it } from 'vitest';
import { reconnectDelay } from '../../packages/client/src/backoff.js';

describe('reconnectDelay', () => {
  it('is uniform between 0.5 s and a cap that doubles per attempt, up to 20 s', () => {
    expect(reconnectDelay(0, false, { random: () => 0 })).toBe(500);
    expect(reconnectDelay(0, false, { random: () => 0.999999 })).toBeCloseTo(1000, -1);
    expect(reconnectDelay(3, false, { random: () => 0.999999 })).toBeCloseTo(8000, -1);
    expect(reconnectDelay(20, false, { random: () => 0.999999 })).toBeCloseTo(20_000, -1);
    expect(reconnectDelay(10_000, false, { random: () => 0.5 })).toBeLessThanOrEqual(20_000);
  });
  it('spreads clients dropped together', () => {
    const delays = Array.from({ length: 200 }, () => reconnectDelay(2, false));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(500);
    expect(Math.max(...delays)).toBeLessThanOrEqual(4000);
    expect(new Set(delays.map((delay) => Math.floor(delay / 100))).size).toBeGreaterThan(10);
  });
  it('waits at least 4 s after an overload close and still never more than 20 s', () => {
    expect(reconnectDelay(0, true, { random: () => 0 })).toBe(4000);
    expect(reconnectDelay(30, true, { random: () => 0.999999 })).toBeLessThanOrEqual(20_000);
  });
});
