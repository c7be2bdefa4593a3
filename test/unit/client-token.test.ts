/** @herald/client: reading a token's claims without verifying, and when to refresh it. */
import { describe, expect, it } from 'vitest';
import { createTokenSupplier, readTokenClaims, refreshAt } from '../../packages/client/src/token.js';
import { userToken } from '../support/tokens.js';

describe('readTokenClaims', () => {
  it('reads exp, iat and sub (base64url, without verifying)', () => {
    const claims = readTokenClaims(userToken('zoë', {}, 60));
    expect(claims.subject).toBe('zoë');
    expect(claims.expiresAt).toBeDefined();
    expect((claims.expiresAt ?? 0) - (claims.issuedAt ?? 0)).toBe(60_000);
  });
  it('gives empty claims for something that is not a JWT', () => {
    expect(readTokenClaims('not a token')).toEqual({ expiresAt: undefined, issuedAt: undefined, subject: undefined });
  });
});

describe('refreshAt', () => {
  const at = (lifetimeS: number): number => (refreshAt({ issuedAt: 0, expiresAt: lifetimeS * 1000, subject: 'bob' }, 0) ?? NaN) / 1000;
  it('is 10 s before exp when that is earlier than 75 % of the lifetime', () => {
    expect(at(20)).toBe(10);
    expect(at(15)).toBe(5);
    expect(at(40)).toBe(30);
  });
  it('is at 75 % of the lifetime for long tokens', () => {
    expect(at(3600)).toBe(2700);
    expect(at(60)).toBe(45);
  });
  it('counts the lifetime from receipt when the token has no iat, and never refreshes a token without exp', () => {
    expect(refreshAt({ issuedAt: undefined, expiresAt: 100_000, subject: undefined }, 60_000)).toBe(90_000);
    expect(refreshAt({ issuedAt: undefined, expiresAt: undefined, subject: undefined }, 0)).toBeUndefined();
  });
});

describe('createTokenSupplier', () => {
  it('calls a function for every token, reusing the one peeked at first', async () => {
    let minted = 0;
    const tokens = createTokenSupplier(() => `t${++minted}`);
    expect(tokens.refreshable).toBe(true);
    expect(await tokens.peek()).toBe('t1');
    expect(await tokens.next()).toBe('t1');
    expect(await tokens.next()).toBe('t2');
  });
  it('a string is the only token', async () => {
    const tokens = createTokenSupplier('fixed');
    expect(tokens.refreshable).toBe(false);
    expect(await tokens.next()).toBe('fixed');
  });
});
