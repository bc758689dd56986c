/**
 * node:tls, node:https and ws, loaded on first use rather than when gridwire is imported. Measured (docs/BENCHMARKS.md,
 * "Loading node:tls"): a process that has merely loaded node:tls moves bulk data over plain tcp:// sessions at about
 * half the rate (`npm run bench -- --suite bulk-throughput --only gridwire --against DIR`, the same library with and
 * without `import 'node:tls'`: 0.47-0.58x); ws loads node:tls itself. So the TLS and WebSocket transports reach these
 * modules only through the functions below, which run when a tls://, wss:// or ws:// address (or `attach`) is used,
 * and a process that speaks plain TCP never loads them. Types are imported as usual: they cost nothing at run time.
 */
import { createRequire } from 'node:module';
import type * as Https from 'node:https';
import type * as Tls from 'node:tls';
import type * as Ws from 'ws';

const require = createRequire(import.meta.url);

let tls: typeof Tls | undefined;
let https: typeof Https | undefined;
let ws: typeof Ws | undefined;

/** @internal node:tls, required on first call. */
export function nodeTls(): typeof Tls {
  return (tls ??= require('node:tls') as typeof Tls);
}

/** @internal node:https, required on first call. */
export function nodeHttps(): typeof Https {
  return (https ??= require('node:https') as typeof Https);
}

/** @internal ws, required on first call (its declarations would need `ws`'s types, which users need not have). */
export function wsModule(): typeof Ws {
  return (ws ??= require('ws') as typeof Ws);
}
