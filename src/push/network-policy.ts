/**
 * Which addresses a push may connect to. A webhook URL or a Web Push endpoint is chosen
 * by a user, and the worker runs inside the operator's network: without this, a user
 * could make the worker POST to anything it can reach — loopback services, the Redis
 * port, cloud metadata, the private network — and learn from a 410 that removed the
 * device whether an internal service answered.
 *
 * Every address in an IANA special-purpose range (the IPv4 and IPv6 special-purpose
 * address registries, plus multicast, the deprecated site-local and IPv4-compatible
 * ranges, and any IPv6 address outside global unicast 2000::/3) is refused, unless the
 * operator lists its network in `PUSH_ALLOWED_NETWORKS`. An IPv4 address embedded in
 * IPv6 (IPv4-mapped `::ffff:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`) is judged as that IPv4
 * address, since that is where the packets go.
 *
 * The check runs where the socket is made, on the addresses it would connect to: the
 * senders' agents resolve names with {@link NetworkPolicy.lookup} (every address of the
 * name is checked; one refused address refuses the name, so a name cannot smuggle an
 * internal address past the check among public ones, and a DNS answer that changes
 * between registration and send — rebinding — is caught at send time), and address
 * literals, which a socket connects to without a lookup, with
 * {@link NetworkPolicy.assertLiteralAllowed} before connecting.
 */
import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import type { CidrNetwork } from '../config/index.js';

/** A push target's address is one the worker may not connect to. Its message says which and why. */
export class RefusedTargetError extends Error {
  override readonly name = 'RefusedTargetError';
  readonly code = 'ERR_HERALD_REFUSED_TARGET';
  constructor(
    /** The name or literal the target was given as. */
    readonly host: string,
    /** What is wrong with it, e.g. `127.0.0.1 is in 127.0.0.0/8 (loopback)`. */
    readonly refusal: string,
  ) {
    super(refusal.startsWith(`${host} `) ? `refused: ${refusal}` : `refused: ${host}: ${refusal}`);
  }
}

/** Whether `error` is (or was caused by) a {@link RefusedTargetError}. */
export function refusedTarget(error: unknown): RefusedTargetError | undefined {
  for (let cause = error, depth = 0; cause instanceof Error && depth < 4; cause = cause.cause, depth += 1) {
    if (cause instanceof RefusedTargetError) return cause;
  }
  return undefined;
}

type Range = readonly [cidr: string, name: string];

/** IANA IPv4 Special-Purpose Address Registry (2024), multicast and reserved. */
const SPECIAL_IPV4: readonly Range[] = [
  ['0.0.0.0/8', '"this network"'],
  ['10.0.0.0/8', 'private-use'],
  ['100.64.0.0/10', 'shared address space (carrier-grade NAT)'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local'],
  ['172.16.0.0/12', 'private-use'],
  ['192.0.0.0/24', 'IETF protocol assignments'],
  ['192.0.2.0/24', 'documentation (TEST-NET-1)'],
  ['192.31.196.0/24', 'AS112-v4'],
  ['192.52.193.0/24', 'AMT'],
  ['192.88.99.0/24', 'deprecated 6to4 relay anycast'],
  ['192.168.0.0/16', 'private-use'],
  ['192.175.48.0/24', 'AS112 direct delegation'],
  ['198.18.0.0/15', 'benchmarking'],
  ['198.51.100.0/24', 'documentation (TEST-NET-2)'],
  ['203.0.113.0/24', 'documentation (TEST-NET-3)'],
  ['224.0.0.0/4', 'multicast'],
  ['255.255.255.255/32', 'limited broadcast'],
  ['240.0.0.0/4', 'reserved'],
];

/**
 * IANA IPv6 Special-Purpose Address Registry (2025) and the deprecated ranges. The
 * IPv4-mapped and NAT64 well-known prefixes are not here: their embedded IPv4 address
 * is judged instead ({@link embeddedIpv4}).
 */
const SPECIAL_IPV6: readonly Range[] = [
  ['::1/128', 'loopback'],
  ['::/128', 'unspecified'],
  ['::/96', 'IPv4-compatible, deprecated'],
  ['64:ff9b:1::/48', 'local-use IPv4/IPv6 translation'],
  ['100::/64', 'discard-only'],
  ['100:0:0:1::/64', 'dummy prefix'],
  ['2001::/32', 'Teredo'],
  ['2001:db8::/32', 'documentation'],
  ['2001::/23', 'IETF protocol assignments'],
  ['2002::/16', '6to4, deprecated'],
  ['2620:4f:8000::/48', 'AS112 direct delegation'],
  ['3fff::/20', 'documentation'],
  ['5f00::/16', 'segment routing SIDs'],
  ['fc00::/7', 'unique-local'],
  ['fe80::/10', 'link-local'],
  ['fec0::/10', 'site-local, deprecated'],
  ['ff00::/8', 'multicast'],
];

/** Prefixes whose last 32 bits are an IPv4 address the packets go to. */
const EMBEDDING_IPV4: readonly Range[] = [
  ['::ffff:0:0/96', 'IPv4-mapped'],
  ['64:ff9b::/96', 'NAT64'],
];

/** IANA's global unicast allocation: any other IPv6 address is unassigned or special. */
const GLOBAL_UNICAST_IPV6 = '2000::/3';

interface CompiledRange {
  readonly cidr: string;
  readonly name: string;
  readonly list: BlockList;
}

function compile(ranges: readonly Range[], family: 'ipv4' | 'ipv6'): CompiledRange[] {
  return ranges.map(([cidr, name]) => {
    const [network = '', prefix = ''] = cidr.split('/');
    const list = new BlockList();
    list.addSubnet(network, Number(prefix), family);
    return { cidr, name, list };
  });
}

const RANGES = { ipv4: compile(SPECIAL_IPV4, 'ipv4'), ipv6: compile(SPECIAL_IPV6, 'ipv6') } as const;
const EMBEDDING = compile(EMBEDDING_IPV4, 'ipv6');
const GLOBAL_UNICAST = compile([[GLOBAL_UNICAST_IPV6, 'global unicast']], 'ipv6')[0] as CompiledRange;

/** Names that are loopback by definition (RFC 6761 §6.3), whatever a resolver says. */
function isLocalhostName(host: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, '');
  return name === 'localhost' || name.endsWith('.localhost');
}

export interface NetworkPolicyOptions {
  /**
   * `PUSH_ALLOWED_NETWORKS`: networks that may be connected to although they are
   * internal (on-premises webhook receivers, a test's local servers).
   * @default [] (nothing internal)
   */
  allowedNetworks?: readonly CidrNetwork[];
}

export interface NetworkPolicy {
  /** Why `address` (an IPv4 or IPv6 literal) may not be connected to; undefined when it may. */
  refusal(address: string): string | undefined;
  /**
   * A `lookup` for `net`, `tls`, `http(s)` and `http2` connections: resolves with
   * `dns.lookup` (all addresses, as the socket would), and fails with a
   * {@link RefusedTargetError} when any address is refused, so no socket is made.
   */
  readonly lookup: LookupFunction;
  /**
   * Throws {@link RefusedTargetError} when `host` (a URL's `hostname`, brackets and all)
   * is an address literal that is refused, or a `localhost` name; a socket connects to a
   * literal without calling `lookup`. Other names pass: `lookup` checks them.
   */
  assertLiteralAllowed(host: string): void;
  /**
   * Registration's check of a URL's `hostname`: the refusal for a literal or a
   * `localhost` name, else for any address the name resolves to within `timeoutMs`;
   * undefined when none is refused, and when the name does not resolve in time (the
   * worker checks again on every connection).
   */
  resolveRefusal(host: string, timeoutMs: number): Promise<string | undefined>;
}

export function createNetworkPolicy(options: NetworkPolicyOptions = {}): NetworkPolicy {
  const allowed = new BlockList();
  for (const { address, prefix, family } of options.allowedNetworks ?? []) allowed.addSubnet(address, prefix, family);

  const refusal = (input: string): string | undefined => {
    const address = input.replace(/^\[|\]$/g, '').replace(/%.*$/, ''); // a zone id says nothing of the range
    const version = isIP(address);
    if (version === 0) return `${input} is not an IP address`;
    const family = version === 4 ? 'ipv4' : 'ipv6';
    if (allowed.check(address, family)) return undefined;
    if (family === 'ipv6') {
      const embedding = EMBEDDING.find((range) => range.list.check(address, 'ipv6'));
      if (embedding !== undefined) {
        const inner = embeddedIpv4(address);
        const why = refusal(inner);
        return why === undefined ? undefined : `${address} embeds ${inner} (${embedding.name}, ${embedding.cidr}), and ${why}`;
      }
    }
    const range = RANGES[family].find((candidate) => candidate.list.check(address, family));
    if (range !== undefined) return `${address} is in ${range.cidr} (${range.name})`;
    if (family === 'ipv6' && !GLOBAL_UNICAST.list.check(address, 'ipv6')) return `${address} is outside ${GLOBAL_UNICAST.cidr} (not global unicast)`;
    return undefined;
  };

  /** A `localhost` name is refused as loopback unless some loopback is allowed; then its addresses decide. */
  const localhostRefusal = (host: string): string | undefined => {
    if (!isLocalhostName(host)) return undefined;
    const why = refusal('127.0.0.1');
    return why === undefined || refusal('::1') === undefined ? undefined : `${host} is a loopback name, and ${why}`;
  };

  const assertLiteralAllowed = (host: string): void => {
    const bare = host.replace(/^\[|\]$/g, '');
    const why = isIP(bare) !== 0 ? refusal(bare) : localhostRefusal(bare);
    if (why !== undefined) throw new RefusedTargetError(bare, why);
  };

  const lookup: LookupFunction = (hostname, lookupOptions, callback) => {
    const why = localhostRefusal(hostname);
    if (why !== undefined) {
      callback(new RefusedTargetError(hostname, why), '', 0);
      return;
    }
    const wanted: LookupAllOptions = { ...lookupOptions, all: true };
    dnsLookup(hostname, wanted, (error, addresses: LookupAddress[]) => {
      if (error !== null) {
        callback(error, '', 0);
        return;
      }
      for (const { address } of addresses) {
        const refused = refusal(address);
        if (refused !== undefined) {
          callback(new RefusedTargetError(hostname, refused), '', 0);
          return;
        }
      }
      const [first] = addresses;
      if (first === undefined) callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), '', 0);
      else if (lookupOptions.all === true) callback(null, addresses);
      else callback(null, first.address, first.family);
    });
  };

  return {
    refusal,
    lookup,
    assertLiteralAllowed,
    async resolveRefusal(host, timeoutMs) {
      try {
        assertLiteralAllowed(host);
      } catch (error) {
        return refusedTarget(error)?.refusal;
      }
      if (isIP(host.replace(/^\[|\]$/g, '')) !== 0) return undefined;
      let timer: NodeJS.Timeout | undefined;
      const resolved = new Promise<LookupAddress[]>((resolve) => {
        // a lookup that fails or is slow finds nothing here; the worker's lookup decides
        dnsLookup(host, { all: true }, (error, addresses) => resolve(error === null ? addresses : []));
        timer = setTimeout(() => resolve([]), timeoutMs);
      });
      const addresses = await resolved.finally(() => clearTimeout(timer));
      for (const { address } of addresses) {
        const why = refusal(address);
        if (why !== undefined) return `${host} resolves to ${address}: ${why}`;
      }
      return undefined;
    },
  };
}

/** The IPv4 address in the last 32 bits of an IPv6 address. */
function embeddedIpv4(address: string): string {
  const groups = ipv6Groups(address);
  const high = groups[6] ?? 0;
  const low = groups[7] ?? 0;
  return `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;
}

/** The eight 16-bit groups of a valid IPv6 literal (`::` expanded, a dotted IPv4 tail as two groups). */
function ipv6Groups(address: string): number[] {
  let text = address.toLowerCase();
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted !== null) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((group) => parseInt(group, 16)));
  const front = parse(head);
  const back = tail === undefined ? [] : parse(tail);
  return [...front, ...new Array<number>(8 - front.length - back.length).fill(0), ...back];
}
