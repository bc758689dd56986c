// IPC messages between the orchestrator (harness.ts) and one worker process (worker.ts, scenarios/worker.ts), and
// the figures a worker reports. Knows nothing of the systems under test.

/** Orchestrator -> worker. `start` goes to the client only; `mark` to both (first opens the window, second closes it). */
export type ParentMsg = { t: 'start' } | { t: 'mark' } | { t: 'stop' };

/** CPU time over the measured window, from process.cpuUsage(), in µs. */
export interface CpuDelta {
  userUs: number;
  systemUs: number;
}

export interface ClientReport {
  role: 'client';
  /** Calls completed at the client during the window. */
  count: number;
  elapsedMs: number;
  p50Us: number;
  p99Us: number;
  cpu: CpuDelta;
}

export interface ServerReport {
  role: 'server';
  elapsedMs: number;
  cpu: CpuDelta;
}

/** process.memoryUsage() at one moment, in bytes. */
export interface MemorySample {
  rss: number;
  /** V8 heap committed (part of rss), and the live part of it. */
  heapTotal: number;
  heapUsed: number;
  /** Memory of C++ objects bound to JS, including arrayBuffers (Buffers live there). */
  external: number;
}

/** What one side had counted at one mark. Bytes are payload bytes, never framing. */
export interface MarkSnapshot extends MemorySample {
  sentBytes: number;
  receivedBytes: number;
}

/** A side of a scenario run (scenarios/worker.ts): bulk transfers, unary under load, memory. */
export interface ScenarioReport {
  role: 'scenario';
  side: 'client' | 'server';
  elapsedMs: number;
  cpu: CpuDelta;
  /** Memory when the side reported `ready`, before any load. */
  ready: MemorySample;
  /** Highest RSS sampled (every SAMPLE_MS, no forced GC) from `ready` to the second mark: set-up bursts included. */
  peakRss: number;
  marks: [MarkSnapshot, MarkSnapshot];
  /** Byte totals once the side's work had ended cleanly after the second mark (the count check uses these). */
  final: { sentBytes: number; receivedBytes: number };
  /** Latency of the calls a scenario timed inside the window; count 0 when it timed none. */
  latency: { count: number; p50Us: number; p99Us: number };
  /** Scenario-specific figures, e.g. streams opened and how long opening took. */
  facts: Record<string, number>;
}

export type WorkerReport = ClientReport | ServerReport | ScenarioReport;

/**
 * Worker -> orchestrator. A server's `ready` carries the address its client must dial; a client sends `armed` after
 * `start` once its set-up is done (the orchestrator waits for it only when the run asks to).
 */
export type ChildMsg =
  | { t: 'ready'; target: string }
  | { t: 'armed' }
  | { t: 'report'; report: WorkerReport }
  | { t: 'error'; message: string };
