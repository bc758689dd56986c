// Suite `bulk` (issue 3, figure 1): upload and download throughput of 64 KiB chunks over one loopback TCP
// connection for raw node:net, grpc-js streaming (best case) and gridwire's upload/download, each run in fresh
// processes, the systems alternated round-robin, and gridwire compared with the others within the SAME run.
// Throughput is counted at the receiver over the window; after it the sender ends cleanly and the run fails unless
// the receiver counted every byte the sender sent.
import type { ScenarioSystem } from '../scenarios/index.js';
import { CHUNK_BYTES } from '../scenarios/scenario.js';
import { median } from '../stats.js';
import { fmt, markdownTable } from '../table.js';
import {
  checkTransfer, cpuPct, errorMessage, formatChecks, probeGridwireStreams, ratioCheck, receivedMiBps, runScenario,
  type RatioCheck, type ScenarioReports, type SuiteOptions,
} from './suite.js';

const DIRECTIONS = ['upload', 'download'] as const;
type Direction = (typeof DIRECTIONS)[number];
const BULK_SYSTEMS: readonly ScenarioSystem[] = ['raw', 'grpc', 'gridwire'];
/** Enough for TCP autotuning, windows and the JIT to settle; bulk steadies much faster than unary. */
const WARMUP_MS = 500;
const DEFAULT_SECONDS = 2;
const DEFAULT_RUNS = 2;

interface BulkResult {
  system: ScenarioSystem;
  direction: Direction;
  run: number;
  ok: boolean;
  error?: string;
  mibPerSec: number;
  /** Bytes the receiver counted over the whole run (warmup, window and the clean end). */
  totalBytes: number;
  /** % of one core over the window: user and system, client and server. */
  cpu: { client: { user: number; sys: number }; server: { user: number; sys: number } };
}

const NO_CPU = { user: NaN, sys: NaN };

function toResult(
  system: ScenarioSystem,
  direction: Direction,
  run: number,
  { client, server }: ScenarioReports,
): BulkResult {
  const [sender, receiver] = direction === 'upload' ? [client, server] : [server, client];
  checkTransfer(sender, receiver);
  return {
    system, direction, run, ok: true,
    mibPerSec: receivedMiBps(receiver),
    totalBytes: receiver.final.receivedBytes,
    cpu: { client: cpuPct(client), server: cpuPct(server) },
  };
}

export async function runBulkSuite(options: SuiteOptions): Promise<object> {
  const notes = [...options.notes];
  let systems = BULK_SYSTEMS.filter((s) => options.systems.includes(s));
  if (systems.includes('gridwire')) {
    const why = await probeGridwireStreams();
    if (why !== null) {
      notes.push(`gridwire SKIPPED: ${why}`);
      systems = systems.filter((s) => s !== 'gridwire');
    }
  }
  for (const n of notes.slice(options.notes.length)) console.error(`bench: ${n}`);
  const seconds = options.seconds ?? DEFAULT_SECONDS;
  const runs = options.runs ?? DEFAULT_RUNS;

  const results: BulkResult[] = [];
  for (let run = 1; run <= runs; run++) {
    for (const direction of DIRECTIONS) {
      for (const system of systems) {
        const label = `[bulk ${run}/${runs}] ${direction.padEnd(8)} ${system.padEnd(8)}`;
        try {
          const reports = await runScenario(system, `bulk-${direction}`, {
            warmupMs: WARMUP_MS, windowMs: seconds * 1000, pin: options.pin,
          });
          const r = toResult(system, direction, run, reports);
          results.push(r);
          const { client: c, server: s } = r.cpu;
          console.error(
            `${label} ${r.mibPerSec.toFixed(0).padStart(6)} MiB/s  CPU usr+sys cli ${c.user.toFixed(0)}+${c.sys.toFixed(0)}% ` +
              `srv ${s.user.toFixed(0)}+${s.sys.toFixed(0)}%  ${(r.totalBytes / 2 ** 30).toFixed(2)} GiB checked`,
          );
        } catch (err) {
          const error = errorMessage(err);
          const cpu = { client: NO_CPU, server: NO_CPU };
          results.push({ system, direction, run, ok: false, error, mibPerSec: NaN, totalBytes: 0, cpu });
          console.error(`${label} FAILED: ${error}`);
        }
      }
    }
  }

  const rows = DIRECTIONS.flatMap((direction) => systems.map((system) => summarise(results, direction, system)));
  const checks = computeChecks(results, runs);
  const chunk = `${CHUNK_BYTES / 1024} KiB chunks`;
  console.log(`\nbulk transfer, ${chunk}, one loopback TCP connection, ${runs} run(s) x ${seconds} s window`);
  for (const n of notes) console.log(`note: ${n}`);
  console.log(`\n${formatRows(rows)}\n`);
  console.log('gridwire vs the others, MiB/s ratios taken within the same run (median over runs):');
  console.log(formatChecks(checks));
  const config = { seconds, runs, warmupMs: WARMUP_MS, pinned: options.pin, notes };
  return { bench: 'bulk-64KiB', checks, results: rows, config };
}

interface BulkRow {
  direction: Direction;
  system: ScenarioSystem;
  runsOk: number;
  runs: number;
  mibPerSec: number;
  min: number;
  max: number;
  cpu: BulkResult['cpu'];
  perRun: BulkResult[];
}

function summarise(results: BulkResult[], direction: Direction, system: ScenarioSystem): BulkRow {
  const perRun = results.filter((r) => r.direction === direction && r.system === system);
  const ok = perRun.filter((r) => r.ok);
  const rates = ok.map((r) => r.mibPerSec);
  const med = (pick: (r: BulkResult) => number): number => median(ok.map(pick));
  return {
    direction, system, runsOk: ok.length, runs: perRun.length,
    mibPerSec: median(rates),
    min: rates.length ? Math.min(...rates) : NaN,
    max: rates.length ? Math.max(...rates) : NaN,
    cpu: {
      client: { user: med((r) => r.cpu.client.user), sys: med((r) => r.cpu.client.sys) },
      server: { user: med((r) => r.cpu.server.user), sys: med((r) => r.cpu.server.sys) },
    },
    perRun,
  };
}

function computeChecks(results: BulkResult[], runs: number): Record<string, RatioCheck> {
  const rate = (run: number, direction: Direction, system: ScenarioSystem): number =>
    results.find((r) => r.ok && r.run === run && r.direction === direction && r.system === system)?.mibPerSec ?? NaN;
  const checks: Record<string, RatioCheck> = {};
  for (const direction of DIRECTIONS) {
    for (const [other, target] of [['raw', 0.9], ['grpc', 3]] as const) {
      const perRun = Array.from({ length: runs }, (_, i) => rate(i + 1, direction, 'gridwire') / rate(i + 1, direction, other));
      checks[`${direction}_gridwire_vs_${other}`] = ratioCheck(perRun, '>=', target);
    }
  }
  return checks;
}

function formatRows(rows: BulkRow[]): string {
  const head = ['direction', 'system', 'MiB/s (median)', 'range', 'CPU usr+sys % client', 'CPU usr+sys % server', 'runs ok'];
  const pct = ({ user, sys }: { user: number; sys: number }): string => `${fmt(user)}+${fmt(sys)}`;
  const body = rows.map((r) => [
    r.direction,
    r.system,
    fmt(r.mibPerSec),
    r.runsOk ? `${fmt(r.min)}–${fmt(r.max)}` : '-',
    pct(r.cpu.client),
    pct(r.cpu.server),
    `${r.runsOk}/${r.runs}`,
  ]);
  return markdownTable(head, body, 2);
}
