// `npm run fuzz`: the fuzz targets (test/fuzz/*-target.ts) with random seeds for a given time, each in a worker thread.
// Every failing input, shrunk by fast-check, is written to test/corpus/<target>/<hash>.bin with a .txt saying what it
// was and what broke; `npm test` replays the corpus (test/fuzz/corpus.test.ts). An input that hangs its thread (no
// next input within --hang-seconds) is taken from the shared buffer the thread writes each input to before running
// it, and kept the same way; so is the input a thread died on. docs/FUZZING.md says how to read and replay them.
//
//   npm run fuzz -- [--seconds N] [--target decoder|payloads|msgpack|session|all] [--seed N] [--runs-per-seed N]
//                   [--hang-seconds N] [--corpus DIR]
//     --seconds        total time, shared by the targets (default 60)
//     --target         one target, or all (default); several: --target decoder,session
//     --seed           reproduce: run that one seed (with the same --runs-per-seed it was found with), no time limit
//     --runs-per-seed  inputs per seed (default 10 000; session 300)
//     --hang-seconds   an input that runs this long is a hang (default 20)
//     --corpus DIR     where failing inputs go (default test/corpus)
//
// Exit status: 0 when nothing failed, 1 when an input failed (its file is named on stdout), 2 for bad flags.
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';

import { CORPUS_DIR, saveToCorpus } from './corpus.js';
import { hex, type TargetName } from './harness.js';
import { isTargetName, TARGET_NAMES, TARGETS } from './targets.js';
import { SHARED_HEADER_BYTES, type WorkerInput, type WorkerReport } from './messages.js';

const MAX_INPUT_BYTES = 1024 * 1024;
/** A thread has this long to load (tsx compiles the targets) before its first input. */
const STARTUP_MS = 60_000;
const DEFAULT_RUNS_PER_SEED: Record<TargetName, number> = { decoder: 10_000, payloads: 10_000, msgpack: 10_000, session: 300 };

const USAGE =
  'usage: npm run fuzz -- [--seconds N] [--target decoder|payloads|msgpack|session|all] [--seed N] [--runs-per-seed N] ' +
  '[--hang-seconds N] [--corpus DIR]';

interface Flags {
  seconds: number;
  targets: TargetName[];
  seed: number | null;
  runsPerSeed: number | null;
  hangMs: number;
  corpus: string;
}

function parseFlags(): Flags {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '60' },
      target: { type: 'string', default: 'all' },
      seed: { type: 'string' },
      'runs-per-seed': { type: 'string' },
      'hang-seconds': { type: 'string', default: '20' },
      corpus: { type: 'string', default: CORPUS_DIR },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const bad = (why: string): never => {
    console.error(`fuzz: ${why}\n${USAGE}`);
    process.exit(2);
  };
  const seconds = Number(values.seconds);
  const hangSeconds = Number(values['hang-seconds']);
  const seed = values.seed === undefined ? null : Number(values.seed);
  const runs = values['runs-per-seed'] === undefined ? null : Number(values['runs-per-seed']);
  const names = values.target === 'all' ? TARGET_NAMES : values.target.split(',').map((s) => s.trim());
  if (!(seconds > 0)) bad(`--seconds must be a positive number, got '${values.seconds}'`);
  if (!(hangSeconds > 0)) bad(`--hang-seconds must be a positive number, got '${values['hang-seconds']}'`);
  if (seed !== null && !Number.isInteger(seed)) bad(`--seed must be an integer, got '${values.seed}'`);
  if (runs !== null && !(Number.isInteger(runs) && runs > 0)) bad(`--runs-per-seed must be a positive integer, got '${values['runs-per-seed']}'`);
  const targets = names.filter(isTargetName);
  if (targets.length === 0 || targets.length !== names.length) bad(`--target takes ${TARGET_NAMES.join(', ')} or all`);
  if (seed !== null && targets.length !== 1) bad('--seed reproduces one target: give --target too');
  return { seconds, targets, seed, runsPerSeed: runs, hangMs: hangSeconds * 1000, corpus: path.resolve(values.corpus) };
}

/** A worker thread running worker.ts under tsx (a worker does not inherit the --import of its parent). */
function startWorker(input: WorkerInput): Worker {
  const tsx = import.meta.resolve('tsx/esm/api');
  const script = new URL('./worker.ts', import.meta.url).href;
  const bootstrap = `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(script)}); })`;
  return new Worker(bootstrap, { eval: true, workerData: input });
}

interface TargetResult {
  seeds: number;
  inputs: number;
  failures: string[];
}

/** Runs one target for `budgetMs`, starting a new thread after one hung or died; keeps every failing input. */
async function fuzzTarget(target: TargetName, budgetMs: number, flags: Flags): Promise<TargetResult> {
  const result: TargetResult = { seeds: 0, inputs: 0, failures: [] };
  const endsAt = performance.now() + budgetMs;
  for (;;) {
    const ended = await runThread(target, Math.max(1, endsAt - performance.now()), flags, result);
    if (ended === 'done' || flags.seed !== null || endsAt - performance.now() < 500) return result;
  }
}

/** One thread of `target` until it is done, hangs or dies. */
function runThread(target: TargetName, budgetMs: number, flags: Flags, result: TargetResult): Promise<'done' | 'lost'> {
  const shared = new SharedArrayBuffer(SHARED_HEADER_BYTES + MAX_INPUT_BYTES);
  const beat = new Int32Array(shared, 0, 2);
  const runsPerSeed = flags.runsPerSeed ?? DEFAULT_RUNS_PER_SEED[target];
  const worker = startWorker({ target, budgetMs, seed: flags.seed, runsPerSeed, shared });
  const label = `[${target}]`;
  let runningSeed: number | null = flags.seed;

  const keep = (input: Uint8Array, how: string, error: string): void => {
    const notes = [
      `what: failing input found by npm run fuzz: ${error.split('\n')[0]!.slice(0, 120)}`,
      `target: ${target}`,
      `found: ${new Date().toISOString()} by npm run fuzz (${how})`,
      `input: ${TARGETS[target].describe(input)}`,
      'failure:',
      ...error.split('\n').slice(0, 40).map((l) => `  ${l}`),
    ].join('\n');
    const { file, added } = saveToCorpus(target, input, notes, flags.corpus);
    result.failures.push(file);
    console.log(`${label} FAILED (${how}): ${error.split('\n')[0]}\n${label}   input ${hex(input)}\n${label}   ${added ? 'written to' : 'already in'} ${file}`);
  };
  /** The input the thread was running when it hung or died. */
  const current = (): Uint8Array => new Uint8Array(shared, SHARED_HEADER_BYTES, Atomics.load(beat, 1)).slice();
  const during = (): string => `seed ${runningSeed ?? '?'}`;

  return new Promise((resolve) => {
    let seen = Atomics.load(beat, 0);
    let seenAt = performance.now();
    let finished = false;
    const finish = (how: 'done' | 'lost'): void => {
      if (finished) return;
      finished = true;
      clearInterval(watchdog);
      void worker.terminate();
      resolve(how);
    };
    const watchdog = setInterval(() => {
      const now = Atomics.load(beat, 0);
      if (now !== seen) {
        seen = now;
        seenAt = performance.now();
      } else if (performance.now() - seenAt > (now === 0 ? STARTUP_MS : flags.hangMs)) {
        if (now === 0) {
          console.log(`${label} the thread did not start within ${STARTUP_MS / 1000} s`);
          finish('lost');
          return;
        }
        keep(current(), `${during()}; the input ran over ${flags.hangMs / 1000} s, the thread was terminated`, 'hang');
        finish('lost');
      }
    }, 250);
    worker.on('message', (m: WorkerReport) => {
      if (m.t === 'start') {
        runningSeed = m.seed;
      } else if (m.t === 'seed') {
        result.seeds++;
        result.inputs += m.runs;
        console.log(`${label} seed ${m.seed}: ${m.runs} inputs in ${(m.ms / 1000).toFixed(1)} s`);
      } else if (m.t === 'failure') {
        keep(m.input, `seed ${m.seed}, shrunk ${m.shrinks} times; reproduce: npm run fuzz -- --target ${target} --seed ${m.seed} --runs-per-seed ${runsPerSeed}`, m.error);
      } else {
        finish('done');
      }
    });
    worker.on('error', (error) => {
      keep(current(), `${during()}; the thread died`, error.stack ?? error.message);
      finish('lost');
    });
    worker.on('exit', () => finish('lost'));
  });
}

async function main(): Promise<void> {
  const flags = parseFlags();
  const share = (flags.seconds * 1000) / flags.targets.length;
  console.log(`fuzz: ${flags.targets.join(', ')}; ${flags.seed === null ? `${flags.seconds} s` : `seed ${flags.seed}`}; corpus ${flags.corpus}`);
  let failed = 0;
  for (const target of flags.targets) {
    const r = await fuzzTarget(target, share, flags);
    failed += r.failures.length;
    console.log(`[${target}] ${r.seeds} seed(s), ${r.inputs} inputs, ${r.failures.length} failure(s)`);
  }
  process.exitCode = failed > 0 ? 1 : 0;
}

await main();
