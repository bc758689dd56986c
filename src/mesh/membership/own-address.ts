/**
 * Whether a membership address is the node's own listener: a node whose `name` is not what the source calls it (with
 * A / AAAA records, `ip:port`) finds itself in the answers under another name, and would add itself as a peer and
 * redial itself for ever. The reconciler skips such an entry with a warning that names the fix. Knows addresses and
 * this host's interfaces only, nothing of meshes.
 *
 * An entry is this node when its port is the listener's and its host is the listener's host (an IP literal or a name,
 * compared as written, IPv6 in its canonical form), or, for a listener on every interface (`0.0.0.0`, `::`), any
 * address of this host: its interfaces' and all of 127.0.0.0/8. No name is resolved; a `unix://` listener matches its
 * own path only.
 */
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { parseAddress, type Address } from '../../transport/address.js';

/** @internal A test of addresses against the listener at `listenUrl` (the bound one: its real port); none: never. */
export function ownAddressTest(listenUrl: string | undefined): (url: string) => boolean {
  if (listenUrl === undefined) return () => false;
  const own = parseAddress(listenUrl);
  let local: Set<string> | undefined; // this host's addresses, read once per test (once per answer), when needed
  return (url) => {
    let entry: Address;
    try {
      entry = parseAddress(url);
    } catch {
      return false;
    }
    if (own.kind === 'unix' || entry.kind === 'unix') return own.kind === 'unix' && entry.kind === 'unix' && own.path === entry.path;
    if ((entry.kind !== 'tcp' && entry.kind !== 'tls') || (own.kind !== 'tcp' && own.kind !== 'tls') || entry.port !== own.port) return false;
    const host = canonical(entry.host);
    if (!isWildcard(own.host)) return host === canonical(own.host);
    local ??= localAddresses();
    return local.has(host) || (isIP(host) === 4 && host.startsWith('127.'));
  };
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || canonical(host) === '::';
}

/** An IPv6 literal as URL writes it (`fd00:0::1` -> `fd00::1`), anything else lower-case. */
function canonical(host: string): string {
  if (isIP(host) !== 6) return host.toLowerCase();
  try {
    return new URL(`http://[${host}]`).hostname.slice(1, -1);
  } catch {
    return host.toLowerCase();
  }
}

function localAddresses(): Set<string> {
  const addresses = new Set<string>(['localhost']);
  for (const list of Object.values(networkInterfaces())) {
    for (const { address } of list ?? []) addresses.add(canonical(address.replace(/%.*$/, ''))); // no zone id
  }
  return addresses;
}
