/**
 * Parses transport addresses: `tcp://host:port`, `tcp://[::1]:port`, `tls://host:port` (`tls://[::1]:port`),
 * `unix:///absolute/path`, `ws://host:port/path` and `wss://host:port/path`. Errors say what a valid address looks like.
 */

export type Address =
  | { kind: 'tcp' | 'tls'; host: string; port: number }
  | { kind: 'unix'; path: string }
  | WebSocketAddress;

/**
 * A WebSocket endpoint. The port defaults to 80 (`ws`) or 443 (`wss`); the path to `/` (a URL without one means `/`).
 * The path is matched exactly, as written (no decoding, no normalisation); no query or fragment.
 */
export interface WebSocketAddress {
  kind: 'ws' | 'wss';
  host: string;
  port: number;
  path: string;
}

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
  if (scheme === 'ws' || scheme === 'wss') return parseWebSocketAddress(url, scheme);
  throw new TypeError(`unsupported address ${JSON.stringify(url)}: use tcp://host:port or unix:///path (tls://host:port for TLS; ws://host:port/path, wss://host:port/path for WebSocket)`);
}

/** A path of RFC 3986 path characters (percent escapes as they are): what an HTTP request line carries unchanged. */
const PATH = /^\/[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*$/;

function parseWebSocketAddress(url: string, kind: 'ws' | 'wss'): WebSocketAddress {
  const rest = url.slice(kind.length + '://'.length);
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:/?#[\]]+))(?::(\d{1,5}))?(\/[^?#]*)?$/.exec(rest);
  const port = m?.[3] === undefined ? (kind === 'ws' ? 80 : 443) : Number(m[3]);
  const path = m?.[4] ?? '/';
  if (!m || port > 65535 || !PATH.test(path)) {
    throw new TypeError(`invalid address ${JSON.stringify(url)}: use ${kind}://host:port/path (port 0-65535, default ${kind === 'ws' ? 80 : 443}; path default /, no query or fragment)`);
  }
  return { kind, host: m[1] ?? m[2]!, port, path };
}

export function formatAddress(address: Address): string {
  if (address.kind === 'unix') return `unix://${address.path}`;
  if (address.kind === 'ws' || address.kind === 'wss') return `${address.kind}://${hostPart(address.host)}:${address.port}${address.path}`;
  return `${address.kind}://${hostPart(address.host)}:${address.port}`;
}

/** An IPv6 literal in brackets, as a URL writes it. */
function hostPart(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}
