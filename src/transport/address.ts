/**
 * Parses transport addresses: `tcp://host:port`, `tcp://[::1]:port`, `tls://host:port` (`tls://[::1]:port`),
 * `unix:///absolute/path`. Errors say what a valid address looks like.
 */

export type Address =
  | { kind: 'tcp' | 'tls'; host: string; port: number }
  | { kind: 'unix'; path: string };

export function parseAddress(url: string): Address {
  const scheme = /^([a-z]+):\/\//.exec(url)?.[1];
  if (scheme === 'unix') {
    const path = url.slice('unix://'.length);
    if (!path.startsWith('/')) throw new TypeError(`invalid address ${JSON.stringify(url)}: use unix:///absolute/path`);
    return { kind: 'unix', path };
  }
  if (scheme === 'tcp' || scheme === 'tls') {
    const rest = url.slice(`${scheme}://`.length);
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:/[\]]+)):(\d{1,5})\/?$/.exec(rest);
    const port = m ? Number(m[3]) : NaN;
    if (!m || port > 65535) throw new TypeError(`invalid address ${JSON.stringify(url)}: use ${scheme}://host:port (port 0-65535)`);
    return { kind: scheme, host: m[1] ?? m[2]!, port };
  }
  throw new TypeError(`unsupported address ${JSON.stringify(url)}: use tcp://host:port or unix:///path (tls://host:port for TLS)`);
}

export function formatAddress(address: Address): string {
  if (address.kind === 'unix') return `unix://${address.path}`;
  return address.host.includes(':') ? `${address.kind}://[${address.host}]:${address.port}` : `${address.kind}://${address.host}:${address.port}`;
}
