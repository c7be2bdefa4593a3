/**
 * In-band token refresh without a transport: which new tokens may replace a
 * connection's (`authorizeTokenRefresh`: the claims compared, and what each refusal
 * says), and the `refreshToken` resolver against a token holder that records what it
 * was told — the connection takes a token only when every check passed.
 */
import { describe, expect, it } from 'vitest';
import { authorizeTokenRefresh, ForbiddenError } from '../../src/auth/policy.js';
import type { Principal } from '../../src/auth/principal.js';
import { AuthenticationError, createTokenVerifier } from '../../src/auth/tokens.js';
import type { Failure } from '../../src/common/failures.js';
import type { TokenHolder } from '../../src/graphql/schema.js';
import { createTokenRefreshResolvers, REFRESH_NEEDS_A_CONNECTION } from '../../src/graphql/token-refresh.js';
import { thrown } from '../support/thrown.js';
import { TEST_SECRET, userToken } from '../support/tokens.js';

const principal = (claims: Partial<Principal> = {}): Principal => ({
  name: 'alice',
  tenant: 'acme',
  stores: ['s1', 's2'],
  scopes: new Set(['inbox:read']),
  expiresAt: Date.now() + 60_000,
  ...claims,
});

/** The message of the ForbiddenError `authorizeTokenRefresh` throws for `next`. */
function refusal(next: Principal, current = principal()): string {
  const error = thrown(() => authorizeTokenRefresh(current, next));
  expect(error).toBeInstanceOf(ForbiddenError);
  expect((error as ForbiddenError).code).toBe('FORBIDDEN');
  return error.message;
}

const FOR_GOOD = /differ: a connection's token can only be replaced by one for the same user and tenant$/;
const RECONNECT = /differ: reconnect with the new token$/;

describe('authorizeTokenRefresh', () => {
  it('accepts the same principal with a later (or earlier) expiry', () => {
    expect(() => authorizeTokenRefresh(principal(), principal({ expiresAt: Date.now() + 3_600_000 }))).not.toThrow();
    expect(() => authorizeTokenRefresh(principal(), principal({ expiresAt: Date.now() + 1000 }))).not.toThrow();
  });

  it('compares stores and scopes as sets: another order is the same grant', () => {
    const current = principal({ stores: ['s1', 's2'], scopes: new Set(['a', 'b']) });
    expect(() => authorizeTokenRefresh(current, principal({ stores: ['s2', 's1'], scopes: new Set(['b', 'a']) }))).not.toThrow();
  });

  it('refuses another user for good, naming "sub"', () => {
    const message = refusal(principal({ name: 'bob' }));
    expect(message).toMatch(FOR_GOOD);
    expect(message).toContain('"sub"');
    expect(message).not.toContain('"tenant"');
    // The claims are named, never their values.
    expect(message).not.toContain('bob');
  });

  it('refuses another tenant for good, naming "tenant"', () => {
    const message = refusal(principal({ tenant: 'globex' }));
    expect(message).toMatch(FOR_GOOD);
    expect(message).toContain('"tenant"');
    expect(message).not.toContain('"sub"');
  });

  it('names both when both differ, and a changed owner wins over changed grants', () => {
    const message = refusal(principal({ name: 'bob', tenant: 'globex', stores: [] }));
    expect(message).toBe(
      `the "sub" and "tenant" claims of this connection's token and the new one differ: a connection's token can only be replaced by one for the same user and tenant`,
    );
  });

  it.each([
    ['a store more', { stores: ['s1', 's2', 's3'] }, '"stores"'],
    ['a store less', { stores: ['s1'] }, '"stores"'],
    ['another store', { stores: ['s1', 's9'] }, '"stores"'],
    ['no scope', { scopes: new Set<string>() }, '"scope"'],
    ['a scope more', { scopes: new Set(['inbox:read', 'notifications:publish']) }, '"scope"'],
  ])('refuses %s, asking for a reconnect', (_case, claims, claim) => {
    const message = refusal(principal(claims));
    expect(message).toMatch(RECONNECT);
    expect(message).toContain(claim);
  });

  it('names stores and scope together when both differ', () => {
    expect(refusal(principal({ stores: [], scopes: new Set() }))).toBe(
      `the "stores" and "scope" claims of this connection's token and the new one differ: reconnect with the new token`,
    );
  });
});

/** A token holder that records what the resolver told it. */
function holder(current: Principal | undefined) {
  const told: { refreshed: Principal[]; refused: Failure[] } = { refreshed: [], refused: [] };
  const tokenHolder: TokenHolder = {
    principal: current,
    tokenRefreshed: (next) => told.refreshed.push(next),
    tokenRefreshRefused: (failure) => told.refused.push(failure),
  };
  return { tokenHolder, told };
}

describe('refreshToken', () => {
  const verifier = createTokenVerifier({ secret: TEST_SECRET });
  const { refreshToken } = createTokenRefreshResolvers(verifier).Mutation;
  const alice = verifier.verify(userToken('alice', {}, 60));

  it('hands the connection the new principal and answers its expiry in ms', () => {
    const { tokenHolder, told } = holder(alice);
    const token = userToken('alice', {}, 3600);
    const answer = refreshToken(undefined, { token }, { principal: alice, tokenHolder });
    expect(answer.expiresAt).toBe(verifier.verify(token).expiresAt);
    expect(answer.expiresAt).toBeGreaterThan(alice.expiresAt);
    expect(told.refreshed.map((next) => next.expiresAt)).toEqual([answer.expiresAt]);
    expect(told.refused).toEqual([]);
  });

  it.each([
    ['another user', userToken('bob'), ForbiddenError, /"sub"/],
    ['another tenant', userToken('alice', { tenant: 'globex' }), ForbiddenError, /"tenant"/],
    ['other stores', userToken('alice', { stores: ['s1'] }), ForbiddenError, RECONNECT],
    ['another scope', userToken('alice', { scope: 'notifications:publish' }), ForbiddenError, RECONNECT],
    ['an expired token', userToken('alice', {}, -10), AuthenticationError, /^token expired$/],
    ['garbage', 'not-a-jwt', AuthenticationError, /jwt malformed/],
    ['a token with its header scheme', `Bearer ${userToken('alice')}`, AuthenticationError, /without "Bearer "/],
  ])('refuses %s, and the connection keeps its token', (_case, token, kind, message) => {
    const { tokenHolder, told } = holder(alice);
    const error = thrown(() => refreshToken(undefined, { token }, { principal: alice, tokenHolder }));
    expect(error).toBeInstanceOf(kind);
    expect(error.message).toMatch(message);
    expect(told.refreshed).toEqual([]);
    expect(told.refused).toEqual([error]);
  });

  it('compares with the principal the connection holds now, not the one the operation started with', () => {
    // After a refresh, the connection's principal is the newer one; so is the comparison.
    const { tokenHolder, told } = holder(verifier.verify(userToken('alice', { stores: ['s1'] })));
    refreshToken(undefined, { token: userToken('alice', { stores: ['s1'] }) }, { principal: alice, tokenHolder });
    expect(told.refreshed).toHaveLength(1);
  });

  it('is BAD_REQUEST without a connection (HTTP, SSE): each request carries its own token', () => {
    const error = thrown(() => refreshToken(undefined, { token: userToken('alice') }, { principal: alice }));
    expect(error.message).toBe(REFRESH_NEEDS_A_CONNECTION);
    expect((error as { extensions?: Record<string, unknown> }).extensions?.['code']).toBe('BAD_REQUEST');
  });
});
