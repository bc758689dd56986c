// IPC messages between the orchestrator (harness.ts) and one worker process (worker.ts), and the figures a
// worker reports. Knows nothing of the systems under test.

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

export type WorkerReport = ClientReport | ServerReport;

/** Worker -> orchestrator. A server's `ready` carries the address its client must dial. */
export type ChildMsg =
  | { t: 'ready'; target: string }
  | { t: 'report'; report: WorkerReport }
  | { t: 'error'; message: string };
