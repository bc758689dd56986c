// Suite `ws-throughput`: gridwire's bulk upload and download (the bulk-throughput suite's transfer: 64 KiB chunks on
// one connection) over tcp:// and over ws:// (PROTOCOL.md §14), each run in fresh pinned processes, the two transports
// alternated (which goes first swaps every run), and ws:// compared with tcp:// within the SAME run. With --against,
// gridwire@base runs the same transfers in the same runs (its library must speak ws://), for a before/after.
// Besides MiB/s, each row gives the receiving side's CPU per GiB received (user + system ms of the process that
// reads the body): on a machine shared with other work the MiB/s swing, the CPU a GiB costs much less.
import { pairLaunch, type PairReports } from '../processes.js';
import { check, fmt, formatChecks, markdownTable, type Check } from '../report.js';
import { median } from '../stats.js';
import type { ScenarioName } from '../systems/index.js';
import { CHUNK_BYTES } from '../systems/scenario.js';
import type { SystemName } from '../systems/index.js';
import {
  attempt, checkPrefix, checkTransfer, cpuPct, describeAgainst, receivedMiBps, roundRobin, runScenario, sameRunRatios, skipSuite, suiteSystems,
  succeeded, type Result, type SuiteOptions,
} from './common.js';

const DIRECTIONS = ['upload', 'download'] as const;
type Direction = (typeof DIRECTIONS)[number];
const TRANSPORTS = ['tcp', 'ws'] as const;
type TransportName = (typeof TRANSPORTS)[number];
const SCENARIOS: Record<Direction, Record<TransportName, ScenarioName>> = {
  upload: { tcp: 'bulk-upload', ws: 'bulk-upload-ws' },
  download: { tcp: 'bulk-download', ws: 'bulk-download-ws' },
};
const WARMUP_MS = 500;
const DEFAULT_SECONDS = 2;
const DEFAULT_RUNS = 2;
/** ws:// MiB/s over tcp:// MiB/s, within the same run (issue 11). */
const TARGET = 0.8;
const TITLE = 'gridwire bulk transfer over ws:// against tcp://';

interface Key {
  system: SystemName;
  transport: TransportName;
  direction: Direction;
  run: number;
}

interface Figures {
  mibPerSec: number;
  totalBytes: number;
  /** CPU (user + system) of the side that received the body, per GiB it received, over the window. */
  receiverCpuMsPerGiB: number;
  cpu: { client: { user: number; sys: number }; server: { user: number; sys: number } };
}

function figures(direction: Direction, { client, server }: PairReports): Figures {
  const [sender, receiver] = direction === 'upload' ? [client, server] : [server, client];
  checkTransfer(sender, receiver);
  const windowBytes = receiver.marks[1].receivedBytes - receiver.marks[0].receivedBytes;
  const receiverCpuMsPerGiB = (receiver.cpu.userUs + receiver.cpu.systemUs) / 1000 / (windowBytes / 2 ** 30);
  return { mibPerSec: receivedMiBps(receiver), totalBytes: receiver.final.receivedBytes, receiverCpuMsPerGiB, cpu: { client: cpuPct(client), server: cpuPct(server) } };
}

const describe = (r: Figures): string => {
  const { client: c, server: s } = r.cpu;
  return (
    `${r.mibPerSec.toFixed(0).padStart(6)} MiB/s  receiver ${r.receiverCpuMsPerGiB.toFixed(0).padStart(4)} CPU ms/GiB  CPU usr+sys cli ${c.user.toFixed(0)}+${c.sys.toFixed(0)}% ` +
    `srv ${s.user.toFixed(0)}+${s.sys.toFixed(0)}%  ${(r.totalBytes / 2 ** 30).toFixed(2)} GiB checked`
  );
};

export async function runWsThroughputSuite(options: SuiteOptions): Promise<object> {
  const { systems, notes: skipped } = await suiteSystems(options, ['gridwire', 'gridwire@base']);
  if (!systems.includes('gridwire')) return skipSuite('ws-throughput', TITLE, skipped[0] ?? 'gridwire is not among --only');
  const notes = [...options.notes, ...describeAgainst(options), ...skipped];
  const seconds = options.seconds ?? DEFAULT_SECONDS;
  const runs = options.runs ?? DEFAULT_RUNS;
  const launch = pairLaunch(options.against);

  const results: Result<Key, Figures>[] = [];
  for (let run = 1; run <= runs; run++) {
    for (const direction of DIRECTIONS) {
      for (const system of roundRobin(systems, run)) {
        const order = run % 2 === 1 ? TRANSPORTS : ([...TRANSPORTS].reverse() as TransportName[]);
        for (const transport of order) {
          const label = `[ws-throughput ${run}/${runs}] ${system.padEnd(13)} ${direction.padEnd(8)} ${transport.padEnd(3)}`;
          const measure = async (): Promise<Figures> =>
            figures(direction, await runScenario(launch, system, SCENARIOS[direction][transport], { warmupMs: WARMUP_MS, windowMs: seconds * 1000, pin: options.pin }));
          results.push(await attempt(label, { system, transport, direction, run }, measure, describe));
        }
      }
    }
  }

  const checks: Record<string, Check> = {};
  for (const system of systems) {
    for (const direction of DIRECTIONS) {
      const ratios = sameRunRatios(results, runs, { system, direction, transport: 'ws' }, { system, direction, transport: 'tcp' }, (r) => r.mibPerSec);
      checks[`${checkPrefix(system)}${direction}_ws_vs_tcp`] = check(ratios, 'x', { sense: '>=', value: TARGET });
    }
  }
  for (const system of systems) {
    for (const direction of DIRECTIONS) {
      // what a GiB costs the receiver over ws:// against tcp:// (below 1: cheaper), within the same run
      const ratios = sameRunRatios(results, runs, { system, direction, transport: 'ws' }, { system, direction, transport: 'tcp' }, (r) => r.receiverCpuMsPerGiB);
      checks[`${checkPrefix(system)}${direction}_ws_vs_tcp_receiver_cpu_per_GiB`] = check(ratios, 'x');
    }
  }
  if (systems.includes('gridwire@base')) {
    for (const direction of DIRECTIONS) {
      for (const transport of TRANSPORTS) {
        const num = { system: 'gridwire' as const, direction, transport };
        const den = { system: 'gridwire@base' as const, direction, transport };
        checks[`${direction}_${transport}_vs_base_MiBps`] = check(sameRunRatios(results, runs, num, den, (r) => r.mibPerSec), 'x');
        checks[`${direction}_${transport}_vs_base_receiver_cpu_per_GiB`] = check(sameRunRatios(results, runs, num, den, (r) => r.receiverCpuMsPerGiB), 'x');
      }
    }
  }
  const rows = systems.flatMap((system) => DIRECTIONS.flatMap((direction) => TRANSPORTS.map((transport) => summarise(results, system, direction, transport))));

  console.log(`\n${TITLE}, ${CHUNK_BYTES / 1024} KiB chunks, one loopback connection, ${runs} run(s) x ${seconds} s window`);
  for (const n of notes) console.log(`note: ${n}`);
  console.log(`\n${formatRows(rows)}\n`);
  console.log('ws:// vs tcp:// (and gridwire vs gridwire@base with --against), ratios taken within the same run (median over runs;');
  console.log('MiB/s: above 1 is faster; receiver CPU per GiB: below 1 is cheaper):');
  console.log(formatChecks(checks));
  return { bench: 'ws-throughput', checks, results: rows, config: { seconds, runs, warmupMs: WARMUP_MS, pinned: options.pin, notes } };
}

interface Row {
  system: SystemName;
  direction: Direction;
  transport: TransportName;
  runsOk: number;
  runs: number;
  mibPerSec: number;
  min: number;
  max: number;
  receiverCpuMsPerGiB: number;
  cpu: Figures['cpu'];
}

function summarise(results: Result<Key, Figures>[], system: SystemName, direction: Direction, transport: TransportName): Row {
  const perRun = results.filter((r) => r.system === system && r.direction === direction && r.transport === transport);
  const ok = succeeded(perRun);
  const rates = ok.map((r) => r.mibPerSec);
  const med = (pick: (r: Figures) => number): number => median(ok.map(pick));
  return {
    system, direction, transport, runsOk: ok.length, runs: perRun.length,
    mibPerSec: median(rates),
    receiverCpuMsPerGiB: med((r) => r.receiverCpuMsPerGiB),
    min: rates.length ? Math.min(...rates) : NaN,
    max: rates.length ? Math.max(...rates) : NaN,
    cpu: {
      client: { user: med((r) => r.cpu.client.user), sys: med((r) => r.cpu.client.sys) },
      server: { user: med((r) => r.cpu.server.user), sys: med((r) => r.cpu.server.sys) },
    },
  };
}

function formatRows(rows: Row[]): string {
  const head = ['system', 'direction', 'transport', 'MiB/s (median)', 'range', 'receiver CPU ms/GiB', 'CPU usr+sys % client', 'CPU usr+sys % server', 'runs ok'];
  const pct = ({ user, sys }: { user: number; sys: number }): string => `${fmt(user)}+${fmt(sys)}`;
  const body = rows.map((r) => [
    r.system,
    r.direction,
    r.transport,
    fmt(r.mibPerSec),
    r.runsOk ? `${fmt(r.min)}–${fmt(r.max)}` : '-',
    fmt(r.receiverCpuMsPerGiB),
    pct(r.cpu.client),
    pct(r.cpu.server),
    `${r.runsOk}/${r.runs}`,
  ]);
  return markdownTable(head, body, 3);
}
