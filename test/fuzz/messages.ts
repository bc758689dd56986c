/** The contract between run.ts (the main thread) and worker.ts (one target's thread): what a thread runs, what it reports. */
import type { TargetName } from './harness.js';

export interface WorkerInput {
  target: TargetName;
  /** Milliseconds to run for. */
  budgetMs: number;
  /** Run only this seed (reproducing a run), else random seeds. */
  seed: number | null;
  runsPerSeed: number;
  /** SHARED_HEADER_BYTES of [heartbeat i32, input length i32], then the input about to run. */
  shared: SharedArrayBuffer;
}

export const SHARED_HEADER_BYTES = 8;

export type WorkerReport =
  | { t: 'start'; seed: number }
  | { t: 'seed'; seed: number; runs: number; ms: number }
  | { t: 'failure'; seed: number; input: Uint8Array; error: string; shrinks: number }
  | { t: 'done' };
