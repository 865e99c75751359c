import { BlockList, isIP } from 'node:net';

/**
 * Which IP addresses an outgoing jwks_uri request may connect to. Anything that is not ordinary
 * global unicast is refused: a client's jwks_uri must not let it make this server probe its own
 * network (SSRF), reach cloud metadata services, or loop back to itself.
 *
 * node:net's BlockList applies IPv4 rules to IPv4-mapped IPv6 addresses too (`::ffff:10.0.0.1`,
 * `::ffff:a00:1`), so the v4 ranges need no v6 twin. Prefixes that embed an IPv4 address without
 * that mapping (NAT64, 6to4, Teredo, IPv4-compatible) are refused whole rather than decoded.
 */
const NON_PUBLIC: ReadonlyArray<readonly [network: string, prefix: number, family: 'ipv4' | 'ipv6']> = [
  ['0.0.0.0', 8, 'ipv4'], // "this network"; 0.0.0.0 reaches the local host on Linux
  ['10.0.0.0', 8, 'ipv4'],
  ['100.64.0.0', 10, 'ipv4'], // carrier-grade NAT
  ['127.0.0.0', 8, 'ipv4'],
  ['169.254.0.0', 16, 'ipv4'], // link-local, cloud metadata endpoints
  ['172.16.0.0', 12, 'ipv4'],
  ['192.0.0.0', 24, 'ipv4'], // IETF protocol assignments
  ['192.0.2.0', 24, 'ipv4'], // documentation
  ['192.88.99.0', 24, 'ipv4'], // 6to4 relay anycast
  ['192.168.0.0', 16, 'ipv4'],
  ['198.18.0.0', 15, 'ipv4'], // benchmarking
  ['198.51.100.0', 24, 'ipv4'], // documentation
  ['203.0.113.0', 24, 'ipv4'], // documentation
  ['224.0.0.0', 4, 'ipv4'], // multicast
  ['240.0.0.0', 4, 'ipv4'], // reserved and broadcast
  ['::', 96, 'ipv6'], // unspecified, loopback ::1, IPv4-compatible
  ['64:ff9b::', 96, 'ipv6'], // NAT64 well-known prefix
  ['64:ff9b:1::', 48, 'ipv6'], // NAT64 local use
  ['100::', 64, 'ipv6'], // discard-only
  ['2001::', 23, 'ipv6'], // IETF protocol assignments, includes Teredo
  ['2001:db8::', 32, 'ipv6'], // documentation
  ['2002::', 16, 'ipv6'], // 6to4
  ['3fff::', 20, 'ipv6'], // documentation
  ['5f00::', 16, 'ipv6'], // SRv6 segment identifiers
  ['fc00::', 7, 'ipv6'], // unique local
  ['fe80::', 10, 'ipv6'], // link-local
  ['fec0::', 10, 'ipv6'], // deprecated site-local
  ['ff00::', 8, 'ipv6'], // multicast
];

const nonPublic = new BlockList();
for (const [network, prefix, family] of NON_PUBLIC) nonPublic.addSubnet(network, prefix, family);

/** True for a syntactically valid IP address outside every non-public range above. */
export function isPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return false;
  return !nonPublic.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/** A host is acceptable only if every address it resolves to is: the connection may use any of them. */
export function allPublic(addresses: readonly string[]): boolean {
  return addresses.length > 0 && addresses.every(isPublicAddress);
}
