/**
 * CIDR networks as an operator writes them (`PUSH_ALLOWED_NETWORKS`), read once at
 * start-up. Config sits below the push worker: the worker's network policy takes these.
 */
import { isIP } from 'node:net';

/** One network: an IPv4 or IPv6 address and a prefix length. */
export interface CidrNetwork {
  readonly address: string;
  readonly prefix: number;
  readonly family: 'ipv4' | 'ipv6';
}

/**
 * Parses `10.0.0.0/8`, `fd00::/8`, or a bare address (one host: /32 or /128); throws an
 * error saying what is wrong. Host bits below the prefix are ignored (`10.1.2.3/8` is
 * `10.0.0.0/8`), as `net.BlockList` does.
 */
export function parseCidr(text: string): CidrNetwork {
  const [address = '', prefixText, extra] = text.split('/');
  const version = isIP(address);
  if (extra !== undefined || version === 0) {
    throw new Error(`"${text}" is not an IPv4 or IPv6 network such as 10.0.0.0/8 or fd00::/8`);
  }
  const max = version === 4 ? 32 : 128;
  if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) throw new Error(`"${text}" has a prefix length that is not a number`);
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (prefix > max) throw new Error(`"${text}" has a prefix length above ${max}`);
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}
