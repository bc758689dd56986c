/**
 * One fuzz target in a worker thread, started by run.ts: runs the target's property with fresh random seeds until its
 * time is up, reporting each seed and each failing input (shrunk by fast-check) to the main thread. Before every input
 * it copies the input into the shared buffer and bumps the heartbeat, so that if an input hangs the thread (a sync
 * loop that never returns), the main thread still knows which input it was, terminates the thread and keeps it.
 */
import { parentPort, workerData } from 'node:worker_threads';

import fc from 'fast-check';

import type { FuzzTarget } from './harness.js';
import { SHARED_HEADER_BYTES, type WorkerInput, type WorkerReport } from './messages.js';
import { TARGETS } from './targets.js';

const port = parentPort!;
const input = workerData as WorkerInput;
const beat = new Int32Array(input.shared, 0, 2);
const bytes = new Uint8Array(input.shared, SHARED_HEADER_BYTES);

/** Keeps the input about to run where the main thread can read it even when this thread hangs. */
function note(current: Uint8Array): void {
  const n = Math.min(current.length, bytes.length);
  bytes.set(current.subarray(0, n));
  Atomics.store(beat, 1, n);
  Atomics.add(beat, 0, 1);
}

function watched(target: FuzzTarget): fc.IAsyncProperty<[Uint8Array]> {
  return fc.asyncProperty(target.inputs, async (current) => {
    note(current);
    await target.check(current);
  });
}

async function main(): Promise<void> {
  const target = TARGETS[input.target];
  const property = watched(target);
  const endsAt = performance.now() + input.budgetMs;
  do {
    const seed = input.seed ?? Math.floor(Math.random() * 0x8000_0000); // positive: `--seed N` reads it back
    port.postMessage({ t: 'start', seed } satisfies WorkerReport);
    const started = performance.now();
    const remaining = Math.max(1, endsAt - started);
    const result = await fc.check(property, {
      seed,
      numRuns: input.runsPerSeed,
      ...(input.seed === null ? { interruptAfterTimeLimit: remaining, markInterruptAsFailure: false } : {}),
    });
    port.postMessage({ t: 'seed', seed, runs: result.numRuns, ms: performance.now() - started } satisfies WorkerReport);
    if (result.failed && result.counterexample !== null) {
      const error = result.errorInstance instanceof Error ? (result.errorInstance.stack ?? result.errorInstance.message) : String(result.errorInstance);
      port.postMessage({ t: 'failure', seed, input: result.counterexample[0], error, shrinks: result.numShrinks } satisfies WorkerReport);
    }
  } while (input.seed === null && performance.now() < endsAt);
  port.postMessage({ t: 'done' } satisfies WorkerReport);
}

await main();
