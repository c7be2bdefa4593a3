/**
 * Channel names: the one place a Redis channel is made, so the one place a name could
 * escape its tenant or reach another kind of channel.
 */
import { describe, expect, it } from 'vitest';
import { thrown } from '../support/thrown.js';
import { assertValidName, createNamer, InvalidNameError, isValidName } from '../../src/names/index.js';

const RULE = `may only hold letters, digits, '.', '_', '-' and '@', and must start with a letter or digit`;

describe('assertValidName / isValidName', () => {
  it.each([
    'alice',
    'Alice42',
    '7',
    'bob.smith',
    'snake_case',
    'kebab-case',
    'alice@example.com',
    'a.-_@',
    'a'.repeat(128),
  ])('accepts %j', (name) => {
    expect(isValidName(name)).toBe(true);
    expect(assertValidName('user name', name)).toBe(name);
  });

  it.each<[string, unknown, string]>([
    ['a glob star', 'ali*', `user name "ali*" ${RULE}`],
    ['a glob question mark', 'ali?', `user name "ali?" ${RULE}`],
    ['a glob opening bracket', 'ali[ce', `user name "ali[ce" ${RULE}`],
    ['a glob closing bracket', 'ali]ce', `user name "ali]ce" ${RULE}`],
    ['the separator', 'acme:company', `user name "acme:company" ${RULE}`],
    ['a space', 'alice smith', `user name "alice smith" ${RULE}`],
    ['a newline (shown escaped)', 'alice\nforged log line', `user name "alice\\nforged log line" ${RULE}`],
    ['a NUL (shown escaped)', 'alice\u0000', `user name "alice\\u0000" ${RULE}`],
    ['a leading dot', '.alice', `user name ".alice" ${RULE}`],
    ['a leading dash', '-alice', `user name "-alice" ${RULE}`],
    ['a leading @', '@alice', `user name "@alice" ${RULE}`],
    ['an empty string', '', 'user name must not be empty'],
    ['129 characters', 'a'.repeat(129), 'user name is longer than 128 characters'],
    ['a number', 42, 'user name must be a string'],
    ['undefined', undefined, 'user name must be a string'],
    ['an array', ['alice'], 'user name must be a string'],
  ])('refuses %s with InvalidNameError naming the rule', (_what, value, message) => {
    expect(isValidName(value)).toBe(false);
    const error = thrown(() => assertValidName('user name', value));
    expect(error).toBeInstanceOf(InvalidNameError);
    expect(error.name).toBe('InvalidNameError');
    expect(error.message).toBe(message);
  });

  it('shortens a long bad name in the message, so an error cannot be flooded', () => {
    const error = thrown(() => assertValidName('store id', `${'x'.repeat(100)}:`));
    expect(error.message).toBe(`store id "${'x'.repeat(40)}…" ${RULE}`);
  });
});

describe('createNamer', () => {
  const channels = createNamer('herald');

  it('refuses a prefix that is not a valid name', () => {
    const error = thrown(() => createNamer('herald:prod'));
    expect(error).toBeInstanceOf(InvalidNameError);
    expect(error.message).toBe(`channel prefix "herald:prod" ${RULE}`);
  });

  it('subscriberDestinations: the user, each store, then the company, each with its stream', () => {
    expect(channels.subscriberDestinations({ name: 'alice', tenant: 'acme', stores: ['s1', 's2'] })).toEqual([
      { channel: 'herald:{acme}:user:alice', stream: 'herald:{acme}:history:user:alice' },
      { channel: 'herald:{acme}:store:s1', stream: 'herald:{acme}:history:store:s1' },
      { channel: 'herald:{acme}:store:s2', stream: 'herald:{acme}:history:store:s2' },
      { channel: 'herald:{acme}:company', stream: 'herald:{acme}:history:company' },
    ]);
    expect(channels.subscriberDestinations({ name: 'bob', tenant: 'globex', stores: [] })).toEqual([
      { channel: 'herald:{globex}:user:bob', stream: 'herald:{globex}:history:user:bob' },
      { channel: 'herald:{globex}:company', stream: 'herald:{globex}:history:company' },
    ]);
  });

  it('subscriberDestinations refuses a bad store id', () => {
    const error = thrown(() => channels.subscriberDestinations({ name: 'alice', tenant: 'acme', stores: ['s1', '*'] }));
    expect(error).toBeInstanceOf(InvalidNameError);
    expect(error.message).toBe(`store id "*" ${RULE}`);
  });

  it.each([
    ['USER', 'alice', 'herald:{acme}:user:alice'],
    ['STORE', 's-17', 'herald:{acme}:store:s-17'],
    ['COMPANY', 'acme', 'herald:{acme}:company'],
  ] as const)('destination(%s, %s) is channel %s', (audience, to, channel) => {
    expect(channels.destination('acme', audience, to).channel).toBe(channel);
  });

  it('refuses a COMPANY notification to another tenant', () => {
    const error = thrown(() => channels.destination('acme', 'COMPANY', 'globex'));
    expect(error).toBeInstanceOf(InvalidNameError);
    expect(error.message).toBe('a COMPANY notification must be sent to your own tenant "acme"');
  });

  it.each<[string, string, 'USER' | 'STORE', string, string]>([
    ['a user name reaching the company channel', 'acme', 'USER', 'x:company', `user name "x:company" ${RULE}`],
    ['a store id with a glob', 'acme', 'STORE', 's*', `store id "s*" ${RULE}`],
    ['a tenant reaching another tenant', 'acme:globex', 'USER', 'alice', `tenant "acme:globex" ${RULE}`],
    ['an empty user name', 'acme', 'USER', '', 'user name must not be empty'],
  ])('destination refuses %s', (_what, tenant, audience, to, message) => {
    const error = thrown(() => channels.destination(tenant, audience, to));
    expect(error).toBeInstanceOf(InvalidNameError);
    expect(error.message).toBe(message);
  });

  it('puts every channel and key under its own prefix', () => {
    const other = createNamer('staging');
    const owner = { name: 'alice', tenant: 'acme', stores: ['s1'] };
    const names = [
      ...other.subscriberDestinations(owner).flatMap(({ channel, stream }) => [channel, stream]),
      other.tenantKey('acme'),
      other.idempotencyKey('acme', 'billing', 'k1'),
      other.deliveryReportChannel('p1'),
    ];
    for (const name of names) expect(name.startsWith('staging:')).toBe(true);
    expect(names.filter((name) => name.includes('herald'))).toEqual([]);
  });

  it('deliveryReportChannel is under the prefix, apart from every tenant, and checks the process id', () => {
    expect(channels.deliveryReportChannel('4f2b-9c')).toBe('herald:_reports:4f2b-9c');
    // no tenant can be called `_reports`, so no tenant channel can collide with it
    expect(isValidName('_reports')).toBe(false);
    const error = thrown(() => channels.deliveryReportChannel('p1:x'));
    expect(error).toBeInstanceOf(InvalidNameError);
    expect(error.message).toBe(`process id "p1:x" ${RULE}`);
  });
});
