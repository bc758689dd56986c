/**
 * The transport layer: addresses to byte duplexes. @internal except for the names src/index.ts re-exports.
 */
export type { PeerInfo, Transport, TransportSink } from './transport.js';
export { parseAddress, formatAddress, type Address } from './address.js';
export { dial, listenOn, type Listener, type DialOptions } from './net.js';
export { createMemoryPair, type MemoryTransport } from './memory.js';
