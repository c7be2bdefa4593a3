/**
 * APNs direct, without a network: the provider token (ES256, its header and claims, when
 * it is renewed), the device token's checks, and the settings that configure it.
 */
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readConfig } from '../../src/config/index.js';
import { deviceId, parseDeviceInput } from '../../src/push/devices.js';
import { APNS_TOKEN_RENEW_MS, createApnsTokens, signApnsToken } from '../../src/push/senders/apns-token.js';
import { createApnsCredentials, TEST_APNS_KEY_ID, TEST_APNS_TEAM_ID, TEST_APNS_TOPIC, verifyProviderToken } from '../support/apns-server.js';
import { thrown } from '../support/thrown.js';

const credentials = createApnsCredentials();
const MINUTE = 60_000;

describe('the APNs provider token', () => {
  it('is an ES256 JWT: header alg and kid, claims iss (the team) and iat in seconds, signed by the .p8 key', () => {
    const at = Date.UTC(2026, 0, 1, 12);
    const token = createApnsTokens(credentials, () => at).current();
    const { header, claims } = verifyProviderToken(token, credentials.publicKey, credentials, at);
    expect(header).toEqual({ alg: 'ES256', kid: TEST_APNS_KEY_ID });
    expect(claims).toEqual({ iss: TEST_APNS_TEAM_ID, iat: at / 1000 });
    // a raw r‖s signature of 64 bytes (JOSE), not DER
    expect(Buffer.from(token.split('.')[2] ?? '', 'base64url')).toHaveLength(64);
  });

  it('is not verified by another key', () => {
    const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const token = signApnsToken(TEST_APNS_KEY_ID, TEST_APNS_TEAM_ID, createPrivateKey(credentials.privateKey), 1_700_000_000);
    expect(() => verifyProviderToken(token, other, credentials, 1_700_000_000_000)).toThrow('bad signature');
  });

  it('is reused for 50 minutes (Apple throttles renewals under 20), and renewed before the hour Apple allows', () => {
    let now = Date.UTC(2026, 0, 1, 12);
    const tokens = createApnsTokens(credentials, () => now);
    const first = tokens.current();
    now += 20 * MINUTE;
    expect(tokens.current()).toBe(first);
    now += 29 * MINUTE; // 49 minutes old
    expect(tokens.current()).toBe(first);
    now += MINUTE; // 50
    const second = tokens.current();
    expect(second).not.toBe(first);
    expect(verifyProviderToken(second, credentials.publicKey, credentials, now).claims['iat']).toBe(now / 1000);
    expect(APNS_TOKEN_RENEW_MS).toBeGreaterThan(20 * MINUTE);
    expect(APNS_TOKEN_RENEW_MS).toBeLessThan(60 * MINUTE);
  });

  it('renews a refused token once: the sends that saw the same refusal get the one new token', () => {
    let now = Date.UTC(2026, 0, 1, 12);
    const tokens = createApnsTokens(credentials, () => now);
    const refused = tokens.current();
    now += 1000;
    const renewed = tokens.renew(refused);
    expect(renewed).not.toBe(refused);
    now += 1000;
    expect(tokens.renew(refused)).toBe(renewed);
    expect(tokens.current()).toBe(renewed);
  });
});

describe('an APNS device', () => {
  const hex = 'a1B2'.repeat(16);
  it('is a hex device token, kept in lower case (one device whatever the case)', () => {
    expect(parseDeviceInput({ kind: 'APNS', token: hex })).toEqual({ kind: 'APNS', token: hex.toLowerCase() });
    expect(deviceId(parseDeviceInput({ kind: 'APNS', token: hex }))).toBe(deviceId(parseDeviceInput({ kind: 'APNS', token: hex.toUpperCase() })));
    // the same string as an FCM token is another device
    expect(deviceId({ kind: 'APNS', token: 'ab'.repeat(32) })).not.toBe(deviceId({ kind: 'FCM', token: 'ab'.repeat(32) }));
  });

  it.each([
    ['missing', undefined],
    ['not hex', 'zz'.repeat(32)],
    ['an odd length', `${'ab'.repeat(32)}a`],
    ['too short', 'ab'.repeat(15)],
    ['too long', 'ab'.repeat(101)],
    ['an FCM token', 'fX1:APA91b-abc_def'],
  ])('is BAD_USER_INPUT naming device.token when %s', (_what, token) => {
    const error = thrown(() => parseDeviceInput({ kind: 'APNS', token }));
    expect(error).toMatchObject({ code: 'BAD_USER_INPUT', field: 'device.token' });
  });

  it('takes no field of another kind', () => {
    expect(thrown(() => parseDeviceInput({ kind: 'APNS', token: hex, url: 'https://a.example' }))).toMatchObject({ field: 'device.url' });
  });
});

describe('the PUSH_APNS_* settings', () => {
  const base = { PUSH_APNS_KEY_ID: TEST_APNS_KEY_ID, PUSH_APNS_TEAM_ID: TEST_APNS_TEAM_ID, PUSH_APNS_TOPIC: TEST_APNS_TOPIC };

  it('are off when none is set, and Apple\'s production host by default', () => {
    expect(readConfig({}).push.apns).toBeUndefined();
    expect(readConfig({ ...base, PUSH_APNS_KEY: credentials.privateKey }).push.apns).toEqual({
      url: 'https://api.push.apple.com',
      credentials: { keyId: TEST_APNS_KEY_ID, teamId: TEST_APNS_TEAM_ID, topic: TEST_APNS_TOPIC, privateKey: credentials.privateKey.trim() }, // a setting's value is trimmed
    });
  });

  it('take the key from a file, or inline with \\n escapes (an env file)', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'apns-')), 'AuthKey.p8');
    writeFileSync(file, credentials.privateKey);
    expect(readConfig({ ...base, PUSH_APNS_KEY_FILE: file, PUSH_APNS_URL: 'https://api.sandbox.push.apple.com' }).push.apns).toMatchObject({
      url: 'https://api.sandbox.push.apple.com',
      credentials: { privateKey: credentials.privateKey },
    });
    const escaped = credentials.privateKey.replace(/\n/g, '\\n');
    expect(readConfig({ ...base, PUSH_APNS_KEY: escaped }).push.apns?.credentials.privateKey).toBe(credentials.privateKey);
  });

  it.each([
    [{ PUSH_APNS_KEY_ID: TEST_APNS_KEY_ID }, 'must be set together'],
    [{ ...base, PUSH_APNS_KEY: 'nope' }, 'PUSH_APNS_KEY is not a PEM private key'],
    [{ ...base, PUSH_APNS_KEY: generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() }, 'is not a P-256'],
    [{ ...base, PUSH_APNS_KEY_ID: 'short' }, 'PUSH_APNS_KEY_ID "short"'],
    [{ ...base, PUSH_APNS_TOPIC: 'noDots' }, 'PUSH_APNS_TOPIC "noDots"'],
    [{ ...base, PUSH_APNS_KEY_FILE: '/nonexistent/AuthKey.p8' }, 'PUSH_APNS_KEY_FILE "/nonexistent/AuthKey.p8" cannot be read'],
  ])('stop start-up naming the problem: %o', (env, problem) => {
    const settings = { PUSH_APNS_KEY: credentials.privateKey, ...env };
    if ('PUSH_APNS_KEY_FILE' in env) delete (settings as Record<string, string>)['PUSH_APNS_KEY'];
    expect(() => readConfig(settings)).toThrow(problem);
  });

  it('never repeat the key in an error', () => {
    const bad = credentials.privateKey.replace('MIG', 'XXX');
    const error = thrown(() => readConfig({ ...base, PUSH_APNS_KEY: bad }));
    expect(String(error)).not.toContain(bad.split('\n')[1]);
  });
});
