// The registry of benchmarked systems and scenarios: their names (systems in round-robin order), gridwire's bulk
// bodies, and a lazy loader of one system's scenario, so a worker imports only the stack it runs (and a gridwire,
// yamux or capnweb that cannot load cannot break the other rows). `gridwire@base` is the same gridwire code driven
// against another checkout's library (--against). `raw-1m` is raw node:net writing 1 MiB buffers (bulk only).
import { echoBytesOf, type BulkBody, type EchoPayload, type Scenario } from './scenario.js';

export const SYSTEM_NAMES = ['raw', 'raw-1m', 'ws', 'grpc', 'yamux', 'capnweb', 'gridwire', 'gridwire@base'] as const;
export type SystemName = (typeof SYSTEM_NAMES)[number];
export const GRIDWIRE_SYSTEMS = ['gridwire', 'gridwire@base'] as const satisfies readonly SystemName[];
export type GridwireSystem = (typeof GRIDWIRE_SYSTEMS)[number];

export const SCENARIO_NAMES = [
  'echo',
  'bulk-upload',
  'bulk-download',
  'bulk-upload-ws',
  'bulk-download-ws',
  'unary-idle',
  'unary-under-bulk',
  'idle-streams',
  'idle-bidi',
  'slow-read',
  'mesh-idle',
  'mesh-beside-download',
  'mesh-data-lane',
] as const;
export type ScenarioName = (typeof SCENARIO_NAMES)[number];

// gridwire's bulk bodies are defined beside the scenario contract (scenario.ts), which every system file imports
export { BULK_BODIES, type BulkBody } from './scenario.js';

/** What `raw-1m` writes at a time: the raw socket at the machine's limit (~5 GB/s on the issue 12 harness). */
const RAW_1M_WRITE_BYTES = 1024 * 1024;

export function isSystemName(s: string): s is SystemName {
  return (SYSTEM_NAMES as readonly string[]).includes(s);
}

export function isGridwire(s: SystemName): s is GridwireSystem {
  return (GRIDWIRE_SYSTEMS as readonly string[]).includes(s);
}

/** Which scenario of which system a side runs, and with what. */
export interface ScenarioChoice {
  system: SystemName;
  scenario: ScenarioName;
  /** The gridwire library a gridwire system imports: a module URL (processes.ts picks it); '' for the others. */
  library: string;
  /** echo: calls kept outstanding on the one connection. */
  concurrency: number;
  /** echo: what each call carries (scenario.ts, ECHO_PAYLOADS). */
  payload: EchoPayload;
  /** The Mesh scenarios: the listen addresses of the server node and the client node. */
  meshUrls: { server: string; client: string } | null;
  /** gridwire's bulk-upload and bulk-download: how the body is produced and read. */
  body: BulkBody;
}

async function scenarios(spec: ScenarioChoice): Promise<Partial<Record<ScenarioName, Scenario>>> {
  switch (spec.system) {
    case 'raw':
      return (await import('./raw.js')).rawScenarios(spec.concurrency, echoBytesOf(spec.payload));
    case 'raw-1m':
      return (await import('./raw.js')).rawBulkScenarios(RAW_1M_WRITE_BYTES);
    case 'ws':
      return (await import('./ws.js')).wsScenarios(spec.concurrency, echoBytesOf(spec.payload));
    case 'grpc':
      return (await import('./grpc.js')).grpcScenarios(spec.concurrency, echoBytesOf(spec.payload));
    case 'yamux':
      return (await import('./yamux.js')).yamuxScenarios(spec.concurrency, echoBytesOf(spec.payload));
    case 'capnweb':
      return (await import('./capnweb.js')).capnwebScenarios(spec.concurrency, echoBytesOf(spec.payload));
    case 'gridwire':
    case 'gridwire@base': {
      const api = await (await import('./gridwire-api.js')).loadGridwire(spec.library);
      if (spec.meshUrls !== null) return (await import('./gridwire-mesh.js')).meshScenarios(api, spec.meshUrls);
      return (await import('./gridwire.js')).gridwireScenarios(api, spec.concurrency, spec.payload, spec.body);
    }
  }
}

export async function loadScenario(spec: ScenarioChoice): Promise<Scenario> {
  const scenario = (await scenarios(spec))[spec.scenario];
  if (scenario === undefined) throw new Error(`${spec.system} has no '${spec.scenario}' scenario`);
  return scenario;
}
