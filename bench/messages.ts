// The contract between the orchestrator (run.ts and the suites, through processes.ts) and a worker process
// (worker.ts): what a worker is asked to run (a WorkerSpec, its one argument, as JSON), the messages each way over
// the fork IPC channel, and the figures a worker reports. Knows nothing of the systems' protocols.
import type { ScenarioChoice, SystemName } from './systems/index.js';

// ---- what a worker runs ----

/** One side of a measured pair run (roles/side.ts): a server, or a client dialing `target`. */
export interface SideSpec extends ScenarioChoice {
  role: 'server' | 'client';
  /** The client's: the address its server reported in `ready`. */
  target: string;
  /** Sample RSS every SAMPLE_MS from `ready` to the second mark, for its peak (the stream-rss suite reads it). */
  samplePeakRss: boolean;
}

/** Node `n<index>` of the mesh-formation fleet (roles/mesh-node.ts), or with `loadOnly` just the library's import. */
export interface MeshNodeSpec {
  role: 'mesh-node';
  library: string;
  index: number;
  urls: string[];
  /** Listen with no peers and add them all on `go`. */
  barrier: boolean;
}

export interface LoadOnlySpec {
  role: 'load-only';
  library: string;
}

/** A process of the idle-connection-rss fleet (roles/conn.ts): the server holding connections, or a client opening them. */
export interface ConnSpec {
  role: 'conn-server' | 'conn-client';
  system: SystemName;
  library: string;
  /** The client's: the server's address. */
  url: string;
}

/**
 * A process of the dos suite (roles/dos.ts): the gridwire server under attack, the canary client calling it, or the
 * attacker (roles/dos-attacks.ts), which imports nothing of the library.
 */
export interface DosSpec {
  role: 'dos-server' | 'dos-canary' | 'dos-attacker';
  /** The server's and the canary's gridwire library. */
  library: string;
  /** The canary's and the attacker's: the server's address. */
  target: string;
  /** The attacker's: which attack, for how long. */
  attack: string;
  seconds: number;
}

export type WorkerSpec = SideSpec | MeshNodeSpec | LoadOnlySpec | ConnSpec | DosSpec;

// ---- figures ----

/** CPU time over the measured window, from process.cpuUsage(), in µs. */
export interface CpuDelta {
  userUs: number;
  systemUs: number;
}

/** process.memoryUsage() at one moment, in bytes. */
export interface MemorySample {
  rss: number;
  /** V8 heap committed (part of rss), and the live part of it. */
  heapTotal: number;
  heapUsed: number;
  /** Memory of C++ objects bound to JS, including arrayBuffers (Buffers live there). */
  external: number;
  arrayBuffers: number;
}

/** What one side had counted at one mark. Bytes are payload bytes, never framing. */
export interface MarkSnapshot extends MemorySample {
  sentBytes: number;
  receivedBytes: number;
}

/** What one side of a pair run reports after its second mark. */
export interface SideReport {
  side: 'client' | 'server';
  elapsedMs: number;
  cpu: CpuDelta;
  /** Memory when the side reported `ready`, before any load. */
  ready: MemorySample;
  /** Highest RSS seen from `ready` to the second mark: sampled every SAMPLE_MS with samplePeakRss, else at the marks. */
  peakRss: number;
  marks: [MarkSnapshot, MarkSnapshot];
  /** Byte totals once the side's work had ended cleanly after the second mark (the count check uses these). */
  final: { sentBytes: number; receivedBytes: number };
  /** Latency of the calls the scenario timed inside the window; count 0 when it timed none. */
  latency: { count: number; p50Us: number; p99Us: number };
  /** Scenario-specific figures, e.g. streams opened and how long opening took. */
  facts: Record<string, number>;
}

/** One mesh node's account of its run. Times are wall-clock ms (performance.timeOrigin + performance.now()). */
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
  cpu: CpuDelta;
}

/** What the dos server saw of one attack (between its two marks). */
export interface DosServerReport {
  /** Memory after GC when the attack started, the highest RSS sampled during it, memory after GC at its end. */
  before: MemorySample;
  peakRss: number;
  after: MemorySample;
  /** Longest event-loop delay measured during the attack, ms. */
  maxLoopDelayMs: number;
  /** The server's warn lines during the attack (a connection closed for a protocol error names its GW_ERR code). */
  warnings: string[];
  warningCount: number;
}

/** The canary's c=1 echo latencies: idle (between its first two marks), and during the attack (the next two). */
export interface DosCanaryReport {
  idle: { count: number; p50Us: number; p99Us: number };
  /** Includes, as one sample, the age of a call still waiting when the attack ended. */
  attack: { count: number; p50Us: number; p99Us: number; maxUs: number };
  failures: number;
  firstFailure: string | null;
}

/** How the attack went, from the attacker's side. */
export interface DosAttackReport {
  attack: string;
  connections: number;
  /** Connections the server closed (or sent a GOAWAY on) before the attacker stopped reading. */
  closedByServer: number;
  /** GOAWAYs read, by "CODE: message". */
  goaways: Record<string, number>;
  /** ms after its connection opened that the first close was noticed (late for an attacker that did not read). */
  firstCloseMs: number | null;
  sentFrames: number;
  sentBytes: number;
  elapsedMs: number;
  /** The attack itself failed (e.g. it could not connect). */
  error: string | undefined;
}

// ---- messages ----

/**
 * Orchestrator -> worker. Pair runs: `start` goes to the client only, `mark` to both (the first opens the window, the
 * second closes it). `go` releases a mesh node held at its barrier; `open` asks a conn client for `count` more
 * connections; `measure` asks the conn server for its memory; `attack` starts the dos attacker. `stop`: close and exit.
 */
export type ParentMsg =
  | { t: 'start' }
  | { t: 'mark' }
  | { t: 'go' }
  | { t: 'open'; count: number }
  | { t: 'measure' }
  | { t: 'attack' }
  | { t: 'stop' };

/**
 * Worker -> orchestrator. `ready` carries the address a client dials (a server's, or the one it was given) and the
 * memory at that moment; a pair client sends `armed` after `start` once its set-up is done (the orchestrator waits for
 * it only when the run asks to).
 */
export type ChildMsg =
  | { t: 'ready'; target: string; memory: MemorySample }
  | { t: 'armed' }
  | { t: 'report'; report: SideReport }
  | { t: 'listening'; at: number }
  | { t: 'done'; report: MeshNodeReport }
  | { t: 'opened'; total: number; ms: number; memory: MemorySample }
  | { t: 'measured'; connections: number; memory: MemorySample }
  | { t: 'dos-server'; report: DosServerReport }
  | { t: 'dos-canary'; report: DosCanaryReport }
  | { t: 'dos-attacker'; report: DosAttackReport }
  | { t: 'error'; message: string };
