// The registry of benchmarked systems: their names, in round-robin order, and a lazy loader for each, so a worker
// only imports the stack it runs (and a missing gridwire cannot break the other rows).
import type { BenchSystem } from './types.js';

export const SYSTEM_NAMES = ['raw', 'ws', 'grpc', 'gridwire'] as const;
export type SystemName = (typeof SYSTEM_NAMES)[number];

export function isSystemName(s: string): s is SystemName {
  return (SYSTEM_NAMES as readonly string[]).includes(s);
}

export async function loadSystem(name: SystemName): Promise<BenchSystem> {
  switch (name) {
    case 'raw':
      return (await import('./raw.js')).raw;
    case 'ws':
      return (await import('./ws.js')).ws;
    case 'grpc':
      return (await import('./grpc.js')).grpcSystem;
    case 'gridwire':
      return (await import('./gridwire.js')).gridwire;
  }
}
