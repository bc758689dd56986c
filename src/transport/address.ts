/**
 * Parses transport addresses: `tcp://host:port`, `tcp://[::1]:port`, `unix:///absolute/path`. Errors say what a
 * valid address looks like.
 */

export type Address =
  | { kind: 'tcp'; host: string; port: number }
  | { kind: 'unix'; path: string };

export function parseAddress(url: string): Address {
  const scheme = /^([a-z]+):\/\//.exec(url)?.[1];
  if (scheme === 'unix') {
    const path = url.slice('unix://'.length);
    if (!path.startsWith('/')) throw new TypeError(`invalid address ${JSON.stringify(url)}: use unix:///absolute/path`);
    return { kind: 'unix', path };
  }
  if (scheme === 'tcp') {
    const rest = url.slice('tcp://'.length);
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:/[\]]+)):(\d{1,5})\/?$/.exec(rest);
    const port = m ? Number(m[3]) : NaN;
    if (!m || port > 65535) throw new TypeError(`invalid address ${JSON.stringify(url)}: use tcp://host:port (port 0-65535)`);
    return { kind: 'tcp', host: m[1] ?? m[2]!, port };
  }
  throw new TypeError(`unsupported address ${JSON.stringify(url)}: use tcp://host:port or unix:///path`);
}

export function formatAddress(address: Address): string {
  if (address.kind === 'unix') return `unix://${address.path}`;
  return address.host.includes(':') ? `tcp://[${address.host}]:${address.port}` : `tcp://${address.host}:${address.port}`;
}
