/**
 * node:tls, node:https and ws, loaded on first use rather than when gridwire is imported: a process that speaks only
 * tcp:// or unix:// never loads them (less to load, less memory, nothing of OpenSSL's TLS state). Measured while
 * looking for a bulk regression (docs/BENCHMARKS.md, issue 11): the library of 6a101cf with `import 'node:tls'` added
 * moved bulk at 0.47x / 0.58x of itself without it; loading lazily did not, however, bring the final code back to the
 * commit before issue 11 (that gap is still open, BENCHMARKS.md). Types are imported as usual: they cost nothing at run
 * time.
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
