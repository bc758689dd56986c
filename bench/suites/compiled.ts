// Builds the scenario worker (and the src/ it imports at run time) as plain JS for the rss suite. Memory must be
// measured as an application runs, and a worker under tsx carries tsx's module-loader thread: on Node 20 that is
// about 34 MiB more RSS per process (a bare `node` 39 MiB, `node --import tsx` 73 MiB), which would swamp the figures.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const CONFIG = fileURLToPath(new URL('../tsconfig.compiled.json', import.meta.url));
/** Where tsconfig.compiled.json's outDir puts the worker. */
const COMPILED_WORKER = fileURLToPath(
  new URL('../../node_modules/.cache/gridwire-bench/bench/scenarios/worker.js', import.meta.url),
);

/** Runs tsc (a few seconds) and returns the compiled worker's path; throws with tsc's exit status on failure. */
export function compileScenarioWorker(): string {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', CONFIG], { stdio: ['ignore', 2, 2] });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`tsc -p bench/tsconfig.compiled.json exited with ${r.status ?? r.signal}`);
  return COMPILED_WORKER;
}
