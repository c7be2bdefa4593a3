/**
 * Token verification and the authorization policy: every refusal says what was wrong.
 */
import { createHmac, generateKeyPairSync, type KeyObject } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { describe, expect, it, vi } from 'vitest';
import { thrown } from '../support/thrown.js';
import { authorizePublish, authorizeSubscription, ForbiddenError, PUBLISH_SCOPE } from '../../src/auth/policy.js';
import { isExpired, type Principal } from '../../src/auth/principal.js';
import { AuthenticationError, bearerToken, createTokenVerifier } from '../../src/auth/tokens.js';
import { publicKey, secretKey } from '../../src/config/jwt-key.js';

const SECRET = 'unit-test-secret-that-is-at-least-32-bytes';
const hs256 = createTokenVerifier({ secret: SECRET });
const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;

/** Signs exactly `payload` (no `exp` added) with the test secret. */
const sign = (payload: object): string => jwt.sign(payload, SECRET, { algorithm: 'HS256' });
const valid = (claims: object = {}): object => ({ sub: 'alice', tenant: 'acme', exp: inAnHour(), ...claims });

const base64url = (value: object | string): string =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** Builds a JWT by hand, for tokens jsonwebtoken refuses to sign. */
function handMade(header: object, payload: object, key: string | undefined): string {
  const signingInput = `${base64url(header)}.${base64url(payload)}`;
  const signature = key === undefined ? '' : createHmac('sha256', key).update(signingInput).digest('base64url');
  return `${signingInput}.${signature}`;
}

function keyPair(type: 'rsa' | 'ec'): { privateKey: KeyObject; publicPem: string } {
  const { privateKey, publicKey } =
    type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { privateKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

function expectRefusal(fn: () => unknown, message: string): void {
  const error = thrown(fn);
  expect(error).toBeInstanceOf(AuthenticationError);
  expect(error.message).toBe(message);
}

describe('createTokenVerifier with an HS256 secret', () => {
  it('turns a valid token into a Principal', () => {
    const exp = inAnHour();
    const principal = hs256.verify(sign({ sub: 'alice', tenant: 'acme', stores: ['s1', 's2', 's1'], scope: 'read  write', exp }));
    expect(secretKey(SECRET).algorithm).toBe('HS256');
    expect(principal).toEqual({
      name: 'alice',
      tenant: 'acme',
      stores: ['s1', 's2'],
      scopes: new Set(['read', 'write']),
      expiresAt: exp * 1000,
    });
    expect(principal.scopes).toBeInstanceOf(Set);
  });

  it('gives a token without stores or scope no stores and no scopes', () => {
    const principal = hs256.verify(sign(valid()));
    expect(principal.stores).toEqual([]);
    expect(principal.scopes.size).toBe(0);
  });

  it('remembers a verified token, and still refuses it once it expires', () => {
    const verifier = createTokenVerifier({ secret: SECRET });
    const exp = Math.floor(Date.now() / 1000) + 2;
    const token = sign(valid({ exp }));
    const first = verifier.verify(token);
    expect(verifier.verify(token)).toBe(first); // the same principal: the signature was checked once
    vi.useFakeTimers({ now: exp * 1000 });
    try {
      expectRefusal(() => verifier.verify(token), 'token expired');
    } finally {
      vi.useRealTimers();
    }
    // A token that differs in one signature character is verified anew, never matched.
    const forged = `${token.slice(0, -2)}${token.endsWith('AA') ? 'BB' : 'AA'}`;
    expectRefusal(() => verifier.verify(forged), 'token rejected: invalid signature');
  });

  it('accepts exactly maxStores stores (default 50)', () => {
    const stores = Array.from({ length: 50 }, (_, i) => `s${i}`);
    expect(hs256.verify(sign(valid({ stores }))).stores).toHaveLength(50);
  });

  it.each<[string, unknown, string]>([
    ['a non-string token', 42, 'missing token: send "Authorization: Bearer <jwt>"'],
    ['an undefined token', undefined, 'missing token: send "Authorization: Bearer <jwt>"'],
    ['an empty token', '', 'missing token: send "Authorization: Bearer <jwt>"'],
    ['a malformed token', 'not.a.jwt', 'token rejected: invalid token'],
    ['a token signed with another secret', jwt.sign(valid(), `${SECRET}-other`, { algorithm: 'HS256' }), 'token rejected: invalid signature'],
    ['an expired token', sign(valid({ exp: Math.floor(Date.now() / 1000) - 10 })), 'token expired'],
    ['a token not valid yet', sign(valid({ nbf: inAnHour() })), 'token not active yet ("nbf")'],
    ['a token without exp', sign({ sub: 'alice', tenant: 'acme' }), 'token has no "exp" claim'],
    ['a token without tenant', sign({ sub: 'alice', exp: inAnHour() }), 'token claim "tenant" must be a string'],
    [
      'a tenant with the separator',
      sign(valid({ tenant: 'acme:globex' })),
      `token claim "tenant" "acme:globex" may only hold letters, digits, '.', '_', '-' and '@', and must start with a letter or digit`,
    ],
    ['a token without sub', sign({ tenant: 'acme', exp: inAnHour() }), 'token claim "sub" must be a string'],
    [
      'a sub with a glob',
      sign(valid({ sub: 'ali*' })),
      `token claim "sub" "ali*" may only hold letters, digits, '.', '_', '-' and '@', and must start with a letter or digit`,
    ],
    ['stores that is not an array', sign(valid({ stores: 's1' })), 'token claim "stores" must be an array of store ids'],
    ['more than 50 stores', sign(valid({ stores: Array.from({ length: 51 }, (_, i) => `s${i}`) })), 'token claim "stores" lists more than 50 stores'],
    [
      'a store id with the separator',
      sign(valid({ stores: ['s1', 's2:x'] })),
      `a store id in token claim "stores" "s2:x" may only hold letters, digits, '.', '_', '-' and '@', and must start with a letter or digit`,
    ],
    ['a scope that is not a string', sign(valid({ scope: ['notifications:publish'] })), 'token claim "scope" must be a space-separated string'],
  ])('refuses %s', (_what, token, message) => {
    expectRefusal(() => hs256.verify(token), message);
  });

  it('refuses more than maxStores stores', () => {
    const verifier = createTokenVerifier({ secret: SECRET, maxStores: 2 });
    expect(verifier.verify(sign(valid({ stores: ['s1', 's2'] }))).stores).toEqual(['s1', 's2']);
    expectRefusal(() => verifier.verify(sign(valid({ stores: ['s1', 's2', 's3'] }))), 'token claim "stores" lists more than 2 stores');
  });

  it('refuses alg "none"', () => {
    const unsigned = handMade({ alg: 'none', typ: 'JWT' }, valid(), undefined);
    expectRefusal(() => hs256.verify(unsigned), 'token rejected: jwt signature is required');
  });

  it('refuses an RS256 token', () => {
    const { privateKey } = keyPair('rsa');
    expectRefusal(() => hs256.verify(jwt.sign(valid(), privateKey, { algorithm: 'RS256' })), 'token rejected: invalid algorithm');
  });
});

describe.each([
  ['RS256', 'rsa'],
  ['ES256', 'ec'],
] as const)('createTokenVerifier with a %s public key', (algorithm, type) => {
  const { privateKey, publicPem } = keyPair(type);
  const verifier = createTokenVerifier({ publicKey: publicPem });

  it(`accepts only ${algorithm}`, () => {
    expect(publicKey(publicPem).algorithm).toBe(algorithm);
  });

  it('turns a valid token into a Principal', () => {
    const exp = inAnHour();
    const token = jwt.sign({ sub: 'alice', tenant: 'acme', stores: ['s1'], scope: PUBLISH_SCOPE, exp }, privateKey, { algorithm });
    expect(verifier.verify(token)).toEqual({
      name: 'alice',
      tenant: 'acme',
      stores: ['s1'],
      scopes: new Set([PUBLISH_SCOPE]),
      expiresAt: exp * 1000,
    });
  });

  it('refuses a token signed by another key', () => {
    const other = keyPair(type);
    expectRefusal(() => verifier.verify(jwt.sign(valid(), other.privateKey, { algorithm })), 'token rejected: invalid signature');
  });

  it('refuses an HS256 token whose HMAC key is the public key PEM (key confusion)', () => {
    const forged = handMade({ alg: 'HS256', typ: 'JWT' }, valid({ scope: PUBLISH_SCOPE }), publicPem);
    expectRefusal(() => verifier.verify(forged), 'token rejected: invalid algorithm');
  });

  it('refuses alg "none"', () => {
    expectRefusal(() => verifier.verify(handMade({ alg: 'none', typ: 'JWT' }, valid(), undefined)), 'token rejected: jwt signature is required');
  });

  it('refuses an expired token', () => {
    const token = jwt.sign(valid({ exp: Math.floor(Date.now() / 1000) - 10 }), privateKey, { algorithm });
    expectRefusal(() => verifier.verify(token), 'token expired');
  });
});

describe('bearerToken', () => {
  it.each([
    ['Bearer abc.def.ghi', 'abc.def.ghi'],
    ['bearer abc.def.ghi', 'abc.def.ghi'],
    ['BEARER   abc.def.ghi  ', 'abc.def.ghi'],
  ])('takes the token out of %j', (header, token) => {
    expect(bearerToken(header)).toBe(token);
  });

  it('is undefined without a header', () => {
    expect(bearerToken(undefined)).toBeUndefined();
  });

  it.each(['Basic dXNlcjpwYXNz', 'Bearer', 'Bearer ', 'Bearer a b', 'abc.def.ghi'])('refuses %j', (header) => {
    expectRefusal(() => bearerToken(header), 'malformed authorization: expected "Bearer <jwt>"');
  });
});

describe('policy', () => {
  const principal = (scopes: string[] = [], expiresAt = Date.now() + 60_000): Principal => ({
    name: 'alice',
    tenant: 'acme',
    stores: [],
    scopes: new Set(scopes),
    expiresAt,
  });

  /** The ForbiddenError `fn` throws. */
  const forbidden = (fn: () => void): Error => {
    const error = thrown(fn);
    expect(error).toBeInstanceOf(ForbiddenError);
    expect(error.name).toBe('ForbiddenError');
    return error;
  };

  it('authorizeSubscription lets a principal subscribe as itself only', () => {
    expect(() => authorizeSubscription(principal(), 'alice')).not.toThrow();
    expect(forbidden(() => authorizeSubscription(principal(), 'bob')).message).toBe(
      'you may only subscribe to your own notifications ("alice")',
    );
    expect(forbidden(() => authorizeSubscription(principal(), 'Alice')).message).toContain('("alice")');
  });

  it('authorizePublish needs the notifications:publish scope, exactly', () => {
    expect(() => authorizePublish(principal(['read', PUBLISH_SCOPE]))).not.toThrow();
    for (const scopes of [[], ['notifications'], ['notifications:publish:all'], ['NOTIFICATIONS:PUBLISH']]) {
      expect(forbidden(() => authorizePublish(principal(scopes))).message).toBe(
        'sending notifications needs the "notifications:publish" scope',
      );
    }
  });

  it('isExpired is true from expiresAt on', () => {
    const at = 1_700_000_000_000;
    expect(isExpired(principal([], at), at - 1)).toBe(false);
    expect(isExpired(principal([], at), at)).toBe(true);
    expect(isExpired(principal([], at), at + 1)).toBe(true);
  });

  it('isExpired uses the current time by default', () => {
    expect(isExpired(principal([], Date.now() + 60_000))).toBe(false);
    expect(isExpired(principal([], Date.now() - 1))).toBe(true);
  });
});

describe('refusals reported to onRefused', () => {
  const secret = 'a-secret-that-is-at-least-32-bytes-long!!';
  const sign = (claims: object, options: jwt.SignOptions = {}): string => jwt.sign(claims, secret, { algorithm: 'HS256', expiresIn: 60, ...options });

  it('names each refusal by kind, once per verification, and not when the caller asks it not to count', () => {
    const reasons: string[] = [];
    const verifier = createTokenVerifier({ secret, onRefused: (reason) => reasons.push(reason) });
    const refuse = (token: unknown, counted = true): void => {
      expect(() => verifier.verify(token, { counted })).toThrow(AuthenticationError);
    };
    refuse(undefined);
    refuse(sign({ sub: 'ann', tenant: 'acme' }, { expiresIn: -10 }));
    refuse(sign({ sub: 'ann', tenant: 'acme' }, { notBefore: 60 }));
    refuse(`${sign({ sub: 'ann', tenant: 'acme' })}x`);
    refuse('not.a.jwt');
    refuse(sign({ sub: 'ann', tenant: 'acme', stores: 'one' }));
    refuse(`${sign({ sub: 'ann', tenant: 'acme' })}x`, false);
    expect(reasons).toEqual(['missing', 'expired', 'not-yet-valid', 'signature', 'malformed', 'claims']);
    verifier.verify(sign({ sub: 'ann', tenant: 'acme' }));
    expect(reasons).toHaveLength(6);
  });
});
