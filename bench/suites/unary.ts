// Suite `unary` (the original bench): a 32-byte echo over loopback TCP for raw node:net, ws, grpc-js and gridwire, at
// each concurrency on one connection, each run in fresh processes, the systems alternated round-robin (A B C D A B C
// D) and gridwire compared with the others within the SAME run.
import { runOnce } from '../harness.js';
import { computeRatios, failedResult, formatRatios, formatTable, summarise, toResult, type RunResult } from '../report.js';
import { errorMessage, type SuiteOptions } from './suite.js';

const WARMUP_MS = 1000;
const DEFAULT_SECONDS = 3;
const DEFAULT_RUNS = 2;
/** Hard limit per run beyond the measured window: process start-up, warmup, reporting and shutdown. */
const RUN_OVERHEAD_LIMIT_MS = 26_000;

/** gridwire runs only if its public API imports; otherwise the row is skipped with a printed note. */
async function probeGridwire(): Promise<string | null> {
  try {
    const { loadGridwire } = await import('../systems/gridwire.js');
    await loadGridwire();
    return null;
  } catch (err) {
    return errorMessage(err).split('\n')[0] ?? 'unknown';
  }
}

export async function runUnarySuite(options: SuiteOptions): Promise<object> {
  const notes = [...options.notes];
  let systems = [...options.systems];
  if (systems.includes('gridwire')) {
    const why = await probeGridwire();
    if (why !== null) {
      notes.unshift(`gridwire SKIPPED: cannot import ../src/index.js (${why})`);
      systems = systems.filter((s) => s !== 'gridwire');
    }
  }
  if (notes.length > options.notes.length) console.error(`bench: ${notes[0]}`);
  const seconds = options.seconds ?? DEFAULT_SECONDS;
  const runs = options.runs ?? DEFAULT_RUNS;
  const concurrencies = [...options.concurrencies];

  const windowMs = seconds * 1000;
  const results: RunResult[] = [];
  for (let run = 1; run <= runs; run++) {
    for (const concurrency of concurrencies) {
      for (const system of systems) {
        const label = `[run ${run}/${runs}] ${system.padEnd(8)} c=${String(concurrency).padEnd(3)}`;
        try {
          const reports = await runOnce({
            system, concurrency, warmupMs: WARMUP_MS, windowMs, pin: options.pin,
            timeoutMs: WARMUP_MS + windowMs + RUN_OVERHEAD_LIMIT_MS,
          });
          const r = toResult(system, concurrency, run, reports);
          results.push(r);
          console.error(
            `${label} ${r.callsPerSec.toFixed(0).padStart(7)} calls/s  p50 ${r.p50Us.toFixed(0)} µs  ` +
              `p99 ${r.p99Us.toFixed(0)} µs  CPU ${r.cpuClientPct.toFixed(0)}/${r.cpuServerPct.toFixed(0)}%`,
          );
        } catch (err) {
          const message = errorMessage(err);
          results.push(failedResult(system, concurrency, run, message));
          console.error(`${label} FAILED: ${message}`);
        }
      }
    }
  }

  const rows = summarise(results, systems, concurrencies);
  const ratios = computeRatios(results, runs);
  console.log(`\nunary echo, 32-byte payload, loopback TCP, ${runs} run(s) x ${seconds} s window`);
  for (const n of notes) console.log(`note: ${n}`);
  console.log(`\n${formatTable(rows)}\n`);
  console.log('gridwire vs the others, calls/s ratios taken within the same run (median over runs):');
  console.log(formatRatios(ratios));
  const config = { seconds, runs, concurrencies, pinned: options.pin, notes };
  return { bench: 'unary-echo-32B', ratios, results: rows, config };
}
