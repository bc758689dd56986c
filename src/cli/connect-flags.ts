/**
 * The flags every command that dials shares, and the ConnectOptions they make. A token is read from a file or from
 * GRIDWIRE_TOKEN, never from the command line (it would show in `ps` and in shell history).
 */
import { readFileSync } from 'node:fs';
import type { ConnectOptions } from '../endpoint/endpoints.js';
import { UsageError } from './command.js';

/** For util.parseArgs's `options`: spread into a command's own. */
export const connectFlags = {
  'tls-ca': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  servername: { type: 'string' },
  'token-file': { type: 'string' },
  'node-name': { type: 'string' },
  timeout: { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/** The usage lines for connectFlags, for a command's `usage`. */
export const CONNECT_FLAGS_USAGE = `Connection flags:
  --tls-ca FILE        CA certificate(s) to trust (PEM), for tls:// and wss://
  --tls-cert FILE      our certificate (PEM), for mutual TLS
  --tls-key FILE       its private key (PEM)
  --servername NAME    the name the server's certificate must hold (default: the address's host)
  --token-file FILE    an auth token (or set GRIDWIRE_TOKEN); never given on the command line
  --node-name NAME     the name we give the peer in the handshake (default: gridwire-cli)
  --timeout DURATION   bound on the dial and handshake, e.g. 5s, 500ms (default 10s)
  --json               one JSON object per result on stdout, for scripts`;

export interface ConnectFlagValues {
  'tls-ca'?: string;
  'tls-cert'?: string;
  'tls-key'?: string;
  servername?: string;
  'token-file'?: string;
  'node-name'?: string;
  timeout?: string;
}

/** `5s`, `500ms`, `2m`, or a bare number of milliseconds. */
export function parseDuration(text: string, flag: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!match) throw new UsageError(`${flag} ${JSON.stringify(text)} is not a duration (e.g. 500ms, 5s, 2m)`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] as 'ms' | 's' | 'm' | 'h' ?? 'ms'];
  return Number(match[1]) * unit;
}

/** `64MiB`, `1GiB`, `512KiB`, `1000000` bytes, also `MB`/`GB` as powers of 1000. */
export function parseSize(text: string, flag: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB|k|K|M|G|T)?$/.exec(text.trim());
  if (!match) throw new UsageError(`${flag} ${JSON.stringify(text)} is not a size (e.g. 64MiB, 1GiB, 1000000)`);
  const units: Record<string, number> = {
    B: 1, KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30, TiB: 2 ** 40, k: 2 ** 10, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40,
    KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12,
  };
  const bytes = Math.round(Number(match[1]) * units[match[2] ?? 'B']!);
  if (!Number.isSafeInteger(bytes)) throw new UsageError(`${flag} ${text} is too large`);
  return bytes;
}

/** The contents of a file a flag names; a file that cannot be read is a usage error naming the flag. */
export function readFlagFile(path: string, flag: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new UsageError(`${flag} ${path}: ${(error as Error).message}`);
  }
}

/** ConnectOptions from the connection flags and the environment (GRIDWIRE_TOKEN). */
export function connectOptionsFrom(values: ConnectFlagValues, env: NodeJS.ProcessEnv): ConnectOptions {
  const options: ConnectOptions = { nodeName: values['node-name'] ?? 'gridwire-cli', log: () => {} };
  if (values.timeout !== undefined) options.connectTimeoutMs = parseDuration(values.timeout, '--timeout');
  const tls: NonNullable<ConnectOptions['tls']> = {};
  if (values['tls-ca'] !== undefined) tls.ca = readFlagFile(values['tls-ca'], '--tls-ca');
  if (values['tls-cert'] !== undefined) tls.cert = readFlagFile(values['tls-cert'], '--tls-cert');
  if (values['tls-key'] !== undefined) tls.key = readFlagFile(values['tls-key'], '--tls-key');
  if (values.servername !== undefined) tls.servername = values.servername;
  if ((tls.cert === undefined) !== (tls.key === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  if (Object.keys(tls).length > 0) options.tls = tls;
  const token = values['token-file'] !== undefined
    ? readFlagFile(values['token-file'], '--token-file').toString('utf8').trim()
    : env.GRIDWIRE_TOKEN;
  if (token !== undefined && token !== '') options.auth = { token };
  return options;
}
