/**
 * The gRPC ping accounting (src/transports/grpc/ping-policy.ts), on a clock the test moves: PINGs too
 * close together are strikes and one too many is refused, unless the server sent headers
 * or data in between — as grpc-core's and grpc-go's servers count them, so the BDP-probe
 * PINGs a grpc-core client sends as data arrives are never strikes.
 */
import { describe, expect, it } from 'vitest';
import { createPingAccount } from '../../src/transports/grpc/ping-policy.js';

const POLICY = { minPingIntervalMs: 10_000, maxPingStrikes: 2 };

function account(policy = POLICY) {
  let time = 1_000_000;
  const pings = createPingAccount(policy, () => time);
  /** Moves the clock by `ms`, then PINGs; whether it was one strike too many. */
  const pingAfter = (ms: number): boolean => {
    time += ms;
    return pings.pinged();
  };
  return { pings, pingAfter };
}

describe('with no data sent', () => {
  it('a client that pings every second is refused at its third strike', () => {
    const { pingAfter } = account();
    // The first PING is no strike; the next three are strikes 1, 2 and 3.
    expect([pingAfter(1000), pingAfter(1000), pingAfter(1000), pingAfter(1000)]).toEqual([false, false, false, true]);
  });

  it('a flood of PINGs at once is refused', () => {
    const { pingAfter } = account();
    const refused = Array.from({ length: 10 }, () => pingAfter(0)).indexOf(true);
    expect(refused).toBe(3);
  });

  it('a client that pings at the interval is never refused', () => {
    const { pingAfter } = account();
    expect(Array.from({ length: 100 }, () => pingAfter(10_000))).not.toContain(true);
  });

  it('a PING after the interval clears the strikes (in a row)', () => {
    const { pingAfter } = account();
    expect([pingAfter(0), pingAfter(1000), pingAfter(1000), pingAfter(10_000), pingAfter(1000), pingAfter(1000)]).not.toContain(true);
    expect(pingAfter(1000)).toBe(true);
  });

  it('with no strike tolerated, the second PING within the interval is refused', () => {
    const { pingAfter } = account({ minPingIntervalMs: 10_000, maxPingStrikes: 0 });
    expect([pingAfter(0), pingAfter(1000)]).toEqual([false, true]);
  });
});

describe('with data sent', () => {
  it('a PING after each message sent is never a strike, however often (grpc-core BDP probes)', () => {
    const { pings, pingAfter } = account();
    const refused = Array.from({ length: 1000 }, () => {
      pings.sent();
      return pingAfter(100);
    });
    expect(refused).not.toContain(true);
  });

  it('up to maxPingStrikes + 1 PINGs per message sent pass; one more is refused', () => {
    const { pings, pingAfter } = account();
    for (let n = 0; n < 100; n++) {
      pings.sent();
      expect([pingAfter(10), pingAfter(10), pingAfter(10)]).toEqual([false, false, false]);
    }
    expect(pingAfter(10)).toBe(true);
  });

  it('once the server stops sending, the strikes count again', () => {
    const { pings, pingAfter } = account();
    pings.sent();
    expect([pingAfter(100), pingAfter(100), pingAfter(100), pingAfter(100)]).toEqual([false, false, false, true]);
  });
});
