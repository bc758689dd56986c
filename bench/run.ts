// `npm run bench`: unary 32-byte echo over loopback TCP for raw node:net, ws, grpc-js and gridwire, at concurrency 1
// and 64 on one connection, each run in fresh server and client processes pinned to different CPUs. Systems are
// alternated round-robin (A B C D A B C D) and gridwire is compared with the others within the SAME run, because
// absolute figures on this machine swing 2-4x between runs (see /work/shared/research/baseline.md).
//
//   npm run bench -- [--seconds 3] [--runs 2] [--only raw,ws,grpc,gridwire] [--concurrency 1,64] [--no-pin]
//
// Prints progress on stderr; on stdout a table, the ratios with their targets, and one final JSON line.
import { parseArgs } from 'node:util';
import { detectPinning, runOnce } from './harness.js';
import { computeRatios, failedResult, formatRatios, formatTable, summarise, toResult, type RunResult } from './report.js';
import { isSystemName, SYSTEM_NAMES, type SystemName } from './systems/index.js';

const WARMUP_MS = 1000;
/** Hard limit per run beyond the measured window: process start-up, warmup, reporting and shutdown. */
const RUN_OVERHEAD_LIMIT_MS = 26_000;

const USAGE = `usage: npm run bench -- [--seconds N] [--runs N] [--only ${SYSTEM_NAMES.join(',')}] [--concurrency 1,64] [--no-pin]`;

function parseFlags(): { seconds: number; runs: number; systems: SystemName[]; concurrencies: number[]; noPin: boolean } {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '3' },
      runs: { type: 'string', default: '2' },
      only: { type: 'string', default: SYSTEM_NAMES.join(',') },
      concurrency: { type: 'string', default: '1,64' },
      'no-pin': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const seconds = Number(values.seconds);
  const runs = Number(values.runs);
  const systems = values.only.split(',').map((s) => s.trim()).filter(Boolean);
  const concurrencies = values.concurrency.split(',').map(Number);
  const bad = (why: string): never => {
    console.error(`bench: ${why}\n${USAGE}`);
    process.exit(2);
  };
  if (!(seconds > 0)) bad(`--seconds must be a positive number, got '${values.seconds}'`);
  if (!Number.isInteger(runs) || runs < 1) bad(`--runs must be a positive integer, got '${values.runs}'`);
  const unknown = systems.filter((s) => !isSystemName(s));
  if (unknown.length || systems.length === 0) bad(`--only takes names from ${SYSTEM_NAMES.join(',')}`);
  if (concurrencies.some((c) => !Number.isInteger(c) || c < 1)) bad(`--concurrency takes positive integers`);
  // Keep the registry order, so the round-robin is always raw ws grpc gridwire.
  const ordered = SYSTEM_NAMES.filter((s) => systems.includes(s));
  return { seconds, runs, systems: ordered, concurrencies, noPin: values['no-pin'] };
}

/** gridwire runs only if its public API imports; otherwise the row is skipped with a printed note. */
async function probeGridwire(): Promise<string | null> {
  try {
    const { loadGridwire } = await import('./systems/gridwire.js');
    await loadGridwire();
    return null;
  } catch (err) {
    return err instanceof Error ? err.message.split('\n')[0] ?? err.message : String(err);
  }
}

async function main(): Promise<void> {
  const flags = parseFlags();
  const notes: string[] = [];
  let systems = flags.systems;
  if (systems.includes('gridwire')) {
    const why = await probeGridwire();
    if (why !== null) {
      notes.push(`gridwire SKIPPED: cannot import ../src/index.js (${why})`);
      systems = systems.filter((s) => s !== 'gridwire');
    }
  }
  const pinning = flags.noPin ? { pin: false, note: 'unpinned (--no-pin)' } : detectPinning();
  notes.push(pinning.note);
  for (const n of notes) console.error(`bench: ${n}`);

  const windowMs = flags.seconds * 1000;
  const results: RunResult[] = [];
  for (let run = 1; run <= flags.runs; run++) {
    for (const concurrency of flags.concurrencies) {
      for (const system of systems) {
        const label = `[run ${run}/${flags.runs}] ${system.padEnd(8)} c=${String(concurrency).padEnd(3)}`;
        try {
          const reports = await runOnce({
            system, concurrency, warmupMs: WARMUP_MS, windowMs, pin: pinning.pin,
            timeoutMs: WARMUP_MS + windowMs + RUN_OVERHEAD_LIMIT_MS,
          });
          const r = toResult(system, concurrency, run, reports);
          results.push(r);
          console.error(
            `${label} ${r.callsPerSec.toFixed(0).padStart(7)} calls/s  p50 ${r.p50Us.toFixed(0)} µs  ` +
              `p99 ${r.p99Us.toFixed(0)} µs  CPU ${r.cpuClientPct.toFixed(0)}/${r.cpuServerPct.toFixed(0)}%`,
          );
        } catch (err) {
          const message = err instanceof Error ? err.message : String(err);
          results.push(failedResult(system, concurrency, run, message));
          console.error(`${label} FAILED: ${message}`);
        }
      }
    }
  }

  const rows = summarise(results, systems, flags.concurrencies);
  const ratios = computeRatios(results, flags.runs);
  console.log(`\nunary echo, 32-byte payload, loopback TCP, ${flags.runs} run(s) x ${flags.seconds} s window`);
  for (const n of notes) console.log(`note: ${n}`);
  console.log(`\n${formatTable(rows)}\n`);
  console.log('gridwire vs the others, calls/s ratios taken within the same run (median over runs):');
  console.log(formatRatios(ratios));
  const config = { seconds: flags.seconds, runs: flags.runs, concurrencies: flags.concurrencies, pinned: pinning.pin, notes };
  console.log(JSON.stringify({ bench: 'unary-echo-32B', ratios, results: rows, config }));
}

main().catch((err: unknown) => {
  console.error('bench failed:', err);
  process.exitCode = 1;
});
