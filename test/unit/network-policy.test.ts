/**
 * The push worker's network policy, against SSRF through devices: every IANA
 * special-purpose range refused, IPv4 embedded in IPv6 judged as IPv4, the operator's
 * `PUSH_ALLOWED_NETWORKS` as the only way in, and the `lookup` the senders connect with.
 */
import { promises as dns, type LookupAddress } from 'node:dns';
import { hostname } from 'node:os';
import { describe, expect, it } from 'vitest';
import { parseCidr } from '../../src/config/networks.js';
import { createNetworkPolicy, RefusedTargetError, refusedTarget } from '../../src/push/network-policy.js';

const strict = createNetworkPolicy();
/**
 * A real name that resolves to an internal address: this machine's own name usually does
 * (127.0.1.1 in Debian's /etc/hosts, the private address on a cloud VM); the tests that
 * need one run only where it does.
 */
const ownName = hostname();
const ownAddresses = await dns.lookup(ownName, { all: true }).catch(() => []);
const ownNameIsInternal = ownAddresses.length > 0 && ownAddresses.some(({ address }) => strict.refusal(address) !== undefined);
const allowing = (...cidrs: string[]) => createNetworkPolicy({ allowedNetworks: cidrs.map(parseCidr) });

/** Each range with its first and last address (or one inside it) and its name in the refusal. */
const REFUSED: ReadonlyArray<readonly [range: string, addresses: readonly string[]]> = [
  ['0.0.0.0/8', ['0.0.0.0', '0.255.255.255']],
  ['10.0.0.0/8', ['10.0.0.0', '10.255.255.255']],
  ['100.64.0.0/10', ['100.64.0.0', '100.127.255.255']],
  ['127.0.0.0/8', ['127.0.0.1', '127.255.255.254']],
  ['169.254.0.0/16', ['169.254.169.254', '169.254.0.1']],
  ['172.16.0.0/12', ['172.16.0.0', '172.31.255.255']],
  ['192.0.0.0/24', ['192.0.0.0', '192.0.0.170', '192.0.0.255']],
  ['192.0.2.0/24', ['192.0.2.1']],
  ['192.31.196.0/24', ['192.31.196.1']],
  ['192.52.193.0/24', ['192.52.193.1']],
  ['192.88.99.0/24', ['192.88.99.1']],
  ['192.168.0.0/16', ['192.168.0.1', '192.168.255.255']],
  ['192.175.48.0/24', ['192.175.48.1']],
  ['198.18.0.0/15', ['198.18.0.1', '198.19.255.255']],
  ['198.51.100.0/24', ['198.51.100.7']],
  ['203.0.113.0/24', ['203.0.113.7']],
  ['224.0.0.0/4', ['224.0.0.1', '239.255.255.255']],
  ['240.0.0.0/4', ['240.0.0.1', '255.255.255.254']],
  ['255.255.255.255/32', ['255.255.255.255']],
  ['::1/128', ['::1', '0:0:0:0:0:0:0:1']],
  ['::/128', ['::']],
  ['::/96', ['::127.0.0.1', '::7f00:1', '::8.8.8.8', '::2']],
  ['64:ff9b:1::/48', ['64:ff9b:1::7f00:1', '64:ff9b:1:ffff::1']],
  ['100::/64', ['100::1']],
  ['2001::/32', ['2001::1', '2001:0:4136:e378:8000:63bf:3fff:fdd2']],
  ['2001::/23', ['2001:2::1', '2001:1ff::1']],
  ['2001:db8::/32', ['2001:db8::1']],
  ['2002::/16', ['2002:7f00:1::1', '2002:808:808::1']],
  ['2620:4f:8000::/48', ['2620:4f:8000::1']],
  ['3fff::/20', ['3fff::1']],
  ['5f00::/16', ['5f00::1']],
  ['fc00::/7', ['fc00::1', 'fd00::1', 'fdff:ffff::1']],
  ['fe80::/10', ['fe80::1', 'febf::1', 'fe80::1%eth0']],
  ['fec0::/10', ['fec0::1', 'feff::1']],
  ['ff00::/8', ['ff02::1', 'ff0e::1']],
];

/** Public addresses next to the ranges above, and well-known public ones. */
const ALLOWED = [
  '1.1.1.1', '8.8.8.8', '9.255.255.255', '11.0.0.0', '100.63.255.255', '100.128.0.0', '126.255.255.255', '128.0.0.0',
  '169.253.255.255', '172.15.255.255', '172.32.0.0', '192.0.1.255', '192.0.3.0', '192.167.255.255', '192.169.0.0',
  '198.17.255.255', '198.20.0.0', '223.255.255.255',
  '2606:4700:4700::1111', '2001:4860:4860::8888', '2001:200::1', '2a00:1450:4001::1', '3ffe::1',
  '::ffff:8.8.8.8', '64:ff9b::808:808',
];

describe('network policy: special-purpose ranges', () => {
  it.each(REFUSED)('refuses %s, naming the range', (range, addresses) => {
    for (const address of addresses) expect(strict.refusal(address), address).toContain(`is in ${range} (`);
  });

  it('accepts public addresses, beside each range', () => {
    expect(ALLOWED.filter((address) => strict.refusal(address) !== undefined).map((address) => `${address}: ${strict.refusal(address)}`)).toEqual([]);
  });

  it('refuses any IPv6 address outside global unicast 2000::/3', () => {
    for (const address of ['1::1', '4000::1', 'e000::1', 'fb00::1']) expect(strict.refusal(address)).toContain('is outside 2000::/3');
  });

  it('judges an IPv4 address embedded in IPv4-mapped and NAT64 IPv6 as that IPv4 address', () => {
    expect(strict.refusal('::ffff:127.0.0.1')).toBe('::ffff:127.0.0.1 embeds 127.0.0.1 (IPv4-mapped, ::ffff:0:0/96), and 127.0.0.1 is in 127.0.0.0/8 (loopback)');
    expect(strict.refusal('::ffff:7f00:1')).toContain('embeds 127.0.0.1');
    expect(strict.refusal('::ffff:a9fe:a9fe')).toContain('embeds 169.254.169.254');
    expect(strict.refusal('64:ff9b::7f00:1')).toBe('64:ff9b::7f00:1 embeds 127.0.0.1 (NAT64, 64:ff9b::/96), and 127.0.0.1 is in 127.0.0.0/8 (loopback)');
    expect(strict.refusal('64:ff9b::10.0.0.1')).toContain('10.0.0.0/8');
    expect(strict.refusal('64:ff9b::')).toContain('embeds 0.0.0.0');
    // a public IPv4 address behind NAT64 (an IPv6-only network's DNS64) is a public target
    expect(strict.refusal('64:ff9b::8.8.8.8')).toBeUndefined();
  });

  it('refuses what is not an address, and takes URL brackets', () => {
    expect(strict.refusal('example.com')).toBe('example.com is not an IP address');
    expect(strict.refusal('[::1]')).toContain('::1/128');
  });
});

describe('network policy: PUSH_ALLOWED_NETWORKS', () => {
  it('lets exactly the listed networks through', () => {
    const policy = allowing('127.0.0.0/8', '10.20.0.0/16', 'fd00:1::/48', '192.168.1.5');
    for (const address of ['127.0.0.1', '10.20.3.4', 'fd00:1::9', '192.168.1.5']) expect(policy.refusal(address), address).toBeUndefined();
    for (const address of ['10.21.0.1', 'fd00:2::1', '192.168.1.6', '::1', '169.254.169.254']) expect(policy.refusal(address), address).toBeDefined();
  });

  it('applies an allowed IPv4 network to its embedded forms too', () => {
    const policy = allowing('127.0.0.0/8');
    expect(policy.refusal('::ffff:127.0.0.1')).toBeUndefined();
    expect(policy.refusal('64:ff9b::7f00:1')).toBeUndefined();
    expect(policy.refusal('::ffff:10.0.0.1')).toContain('10.0.0.0/8');
  });
});

describe('network policy: literals and names', () => {
  it('refuses a refused literal host before any connection, brackets and all; lets names through to the lookup', () => {
    expect(() => strict.assertLiteralAllowed('[::7f00:1]')).toThrow(RefusedTargetError);
    expect(() => strict.assertLiteralAllowed('[64:ff9b::7f00:1]')).toThrow('embeds 127.0.0.1');
    expect(() => strict.assertLiteralAllowed('224.0.0.1')).toThrow('multicast');
    expect(() => strict.assertLiteralAllowed('8.8.8.8')).not.toThrow();
    expect(() => strict.assertLiteralAllowed('relay.example.com')).not.toThrow();
  });

  it('refuses localhost names by name (RFC 6761), the trailing dot and any case included', () => {
    for (const name of ['localhost', 'localhost.', 'LocalHost', 'app.localhost', 'app.localhost.']) {
      expect(() => strict.assertLiteralAllowed(name), name).toThrow(`${name} is a loopback name`);
    }
    // with loopback allowed, what the name resolves to decides
    expect(() => allowing('127.0.0.0/8', '::1').assertLiteralAllowed('localhost')).not.toThrow();
  });

  it("lookup: resolves like dns.lookup, and refuses a name when any address it resolves to is refused", async () => {
    const lookup = (policy: ReturnType<typeof createNetworkPolicy>, name: string, all: boolean) =>
      new Promise<{ error: Error | null; addresses: string | LookupAddress[] }>((resolve) =>
        policy.lookup(name, { all }, (error, addresses) => resolve({ error, addresses })),
      );
    for (const all of [true, false]) expect((await lookup(strict, 'localhost', all)).error).toBeInstanceOf(RefusedTargetError);
    const allowed = allowing('127.0.0.0/8', '::1');
    expect(await lookup(allowed, 'localhost', true)).toEqual({ error: null, addresses: expect.arrayContaining([expect.objectContaining({ address: '127.0.0.1', family: 4 })]) });
    expect(await lookup(allowed, 'localhost', false)).toMatchObject({ error: null, addresses: expect.stringMatching(/^(127\.0\.0\.1|::1)$/) });
    expect((await lookup(strict, 'no-such-host.invalid', true)).error).toMatchObject({ code: 'ENOTFOUND' });
  });

  it.runIf(ownNameIsInternal)(`lookup: refuses this machine's own name, which resolves to ${ownAddresses.map(({ address }) => address).join(', ')}`, async () => {
    for (const all of [true, false]) {
      const error = await new Promise<Error | null>((resolve) => strict.lookup(ownName, { all }, (failure) => resolve(failure)));
      expect(refusedTarget(error)?.message).toMatch(new RegExp(`^refused: ${ownName}: `));
    }
    expect(await strict.resolveRefusal(ownName, 5000)).toMatch(new RegExp(`^${ownName} resolves to `));
  });

  it("registration: refuses a literal, a localhost name or a name resolving to an internal address, naming it; a name that does not resolve passes", async () => {
    expect(await strict.resolveRefusal(new URL('https://[::127.0.0.1]/').hostname, 2000)).toBe('::7f00:1 is in ::/96 (IPv4-compatible, deprecated)');
    expect(await strict.resolveRefusal('localhost.', 2000)).toContain('localhost. is a loopback name');
    expect(await strict.resolveRefusal('no-such-host.invalid', 5000)).toBeUndefined();
    expect(await allowing('127.0.0.0/8', '::1').resolveRefusal('localhost', 5000)).toBeUndefined();
  });
});
