// Suite `bulk-throughput`: upload and download MiB/s of 64 KiB chunks over one loopback TCP connection, raw node:net,
// grpc-js streaming (best case) and gridwire's upload/download (and gridwire@base with --against), each run in fresh
// pinned processes, the systems alternated round-robin, and gridwire compared with the others within the SAME run.
// Throughput is counted at the receiver over the window; after it the sender ends cleanly and the run fails unless
// the receiver counted every byte the sender sent.
import { pairLaunch, type PairReports } from '../processes.js';
import { check, fmt, formatChecks, markdownTable, type Check } from '../report.js';
import { median } from '../stats.js';
import type { SystemName } from '../systems/index.js';
import { CHUNK_BYTES } from '../systems/scenario.js';
import {
  attempt, checkTransfer, cpuPct, describeAgainst, receivedMiBps, roundRobin, runScenario, sameRunRatios, suiteSystems,
  succeeded, type Result, type SuiteOptions,
} from './common.js';

const DIRECTIONS = ['upload', 'download'] as const;
type Direction = (typeof DIRECTIONS)[number];
/** Enough for TCP autotuning, windows and the JIT to settle; bulk steadies much faster than unary. */
const WARMUP_MS = 500;
const DEFAULT_SECONDS = 2;
const DEFAULT_RUNS = 2;
/** gridwire's MiB/s over the other system's, within the same run. */
const TARGETS = [['raw', 0.9], ['grpc', 3]] as const;

interface Key {
  system: SystemName;
  direction: Direction;
  run: number;
}

interface Figures {
  mibPerSec: number;
  /** Bytes the receiver counted over the whole run (warmup, window and the clean end). */
  totalBytes: number;
  /** % of one core over the window: user and system, client and server. */
  cpu: { client: { user: number; sys: number }; server: { user: number; sys: number } };
}

function figures(direction: Direction, { client, server }: PairReports): Figures {
  const [sender, receiver] = direction === 'upload' ? [client, server] : [server, client];
  checkTransfer(sender, receiver);
  return {
    mibPerSec: receivedMiBps(receiver),
    totalBytes: receiver.final.receivedBytes,
    cpu: { client: cpuPct(client), server: cpuPct(server) },
  };
}

const describe = (r: Figures): string => {
  const { client: c, server: s } = r.cpu;
  return (
    `${r.mibPerSec.toFixed(0).padStart(6)} MiB/s  CPU usr+sys cli ${c.user.toFixed(0)}+${c.sys.toFixed(0)}% ` +
    `srv ${s.user.toFixed(0)}+${s.sys.toFixed(0)}%  ${(r.totalBytes / 2 ** 30).toFixed(2)} GiB checked`
  );
};

export async function runBulkSuite(options: SuiteOptions): Promise<object> {
  const { systems, notes: skipped } = await suiteSystems(options, ['raw', 'grpc', 'gridwire', 'gridwire@base']);
  const notes = [...skipped, ...options.notes, ...describeAgainst(options)];
  const seconds = options.seconds ?? DEFAULT_SECONDS;
  const runs = options.runs ?? DEFAULT_RUNS;
  const launch = pairLaunch(options.against);

  const results: Result<Key, Figures>[] = [];
  for (let run = 1; run <= runs; run++) {
    for (const direction of DIRECTIONS) {
      for (const system of roundRobin(systems, run)) {
        const label = `[bulk ${run}/${runs}] ${direction.padEnd(8)} ${system.padEnd(13)}`;
        const measure = async (): Promise<Figures> =>
          figures(direction, await runScenario(launch, system, `bulk-${direction}`, { warmupMs: WARMUP_MS, windowMs: seconds * 1000, pin: options.pin }));
        results.push(await attempt(label, { system, direction, run }, measure, describe));
      }
    }
  }

  const checks: Record<string, Check> = {};
  for (const direction of DIRECTIONS) {
    const ratio = (other: SystemName): number[] =>
      sameRunRatios(results, runs, { direction, system: 'gridwire' }, { direction, system: other }, (r) => r.mibPerSec);
    for (const [other, target] of TARGETS.filter(([other]) => systems.includes(other))) {
      checks[`${direction}_gridwire_vs_${other}`] = check(ratio(other), 'x', { sense: '>=', value: target });
    }
    if (systems.includes('gridwire@base')) checks[`${direction}_gridwire_vs_base`] = check(ratio('gridwire@base'), 'x');
  }
  const rows = DIRECTIONS.flatMap((direction) => systems.map((system) => summarise(results, direction, system)));

  console.log(`\nbulk transfer, ${CHUNK_BYTES / 1024} KiB chunks, one loopback TCP connection, ${runs} run(s) x ${seconds} s window`);
  for (const n of notes) console.log(`note: ${n}`);
  console.log(`\n${formatRows(rows)}\n`);
  console.log('gridwire vs the others, MiB/s ratios taken within the same run (median over runs):');
  console.log(formatChecks(checks));
  const config = { seconds, runs, warmupMs: WARMUP_MS, pinned: options.pin, against: options.against, notes };
  return { bench: 'bulk-throughput', checks, results: rows, config };
}

interface Row {
  direction: Direction;
  system: SystemName;
  runsOk: number;
  runs: number;
  mibPerSec: number;
  min: number;
  max: number;
  cpu: Figures['cpu'];
  perRun: Result<Key, Figures>[];
}

function summarise(results: Result<Key, Figures>[], direction: Direction, system: SystemName): Row {
  const perRun = results.filter((r) => r.direction === direction && r.system === system);
  const ok = succeeded(perRun);
  const rates = ok.map((r) => r.mibPerSec);
  const med = (pick: (r: Figures) => number): number => median(ok.map(pick));
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

function formatRows(rows: Row[]): string {
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
