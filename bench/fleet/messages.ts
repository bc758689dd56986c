// IPC messages between a fleet suite (suites/mesh.ts, suites/connrss.ts) and its worker processes (mesh-node.ts,
// conn-worker.ts). Times are wall-clock ms since the epoch (performance.timeOrigin + performance.now()), so the
// orchestrator can line up events of different processes on this machine.

/** What a process reports of its memory (process.memoryUsage(), bytes), after forced GCs when it runs with --expose-gc. */
export interface FleetMemory {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

/** One mesh node's account of its run. */
export interface MeshNodeReport {
  name: string;
  /** performance.timeOrigin: when the process started. */
  startedAt: number;
  /** The library is imported and the Mesh constructed. */
  loadedAt: number;
  /** mesh.start() resolved: listening, first dials started. */
  listeningAt: number;
  /** Peers added (dialing starts): `listeningAt`, or with a barrier when `go` arrived. */
  goAt: number;
  /** Each peer's call completed, by peer name. */
  callDoneAt: Record<string, number>;
  /** The last of them. */
  doneAt: number;
  /** Times a lane to a peer went into backoff after a failure (a dial failed, a connection was lost), by error shape. */
  backoffs: Record<string, number>;
  /** Peers whose lane went into backoff after a failure at least once. */
  backoffPeers: string[];
  /** Longest backoff delay announced, ms. */
  maxBackoffMs: number;
  /** Peers this node is the designated dialer of. */
  dials: number;
  /** Warnings gridwire logged. */
  warnings: number;
  cpu: { userUs: number; systemUs: number };
}

/** Parent -> child. `go` releases a mesh node held at a barrier; `open` asks a conn client for `count` more connections; `measure` asks the conn server for memory. */
export type FleetParentMsg = { t: 'stop' } | { t: 'go' } | { t: 'open'; count: number } | { t: 'measure' };

/** Child -> parent. */
export type FleetChildMsg =
  | { t: 'listening'; at: number }
  | { t: 'done'; report: MeshNodeReport }
  | { t: 'ready'; url: string; memory: FleetMemory }
  | { t: 'opened'; total: number; ms: number; memory: FleetMemory }
  | { t: 'measured'; connections: number; memory: FleetMemory }
  | { t: 'error'; message: string };
