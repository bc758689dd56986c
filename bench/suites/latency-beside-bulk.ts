// Two suites that ask whether bulk traffic hurts small calls: a c=1 loop of 32-byte echo calls, its p50/p99 measured
// on an idle connection and beside a download, each condition in fresh pinned processes, alternated within every
// run; the check is the per-run ratio p99(beside) / p99(idle), target <= 2x. The echo loop and the download reader
// share the client process, as they would in an application. With --against, gridwire@base runs every condition too.
//   unary-under-bulk  one connect()ed session: idle, and beside a download on that SAME session
//   lane-latency      two Mesh nodes (a: client, the pair's dialer; b: server): idle, beside a download on the pair's
//                     one connection (dataLane: false), and beside one the mesh routes over the pair's `data`
//                     connection (dataLane: true), order rotated run by run; the server counts which lane each call
//                     arrived on, and a run where the download did not take the lane its condition asks for fails.
import type { SideReport } from '../messages.js';
import { pairLaunch, type PairReports } from '../processes.js';
import { check, fmt, formatChecks, markdownTable, type Check } from '../report.js';
import { median } from '../stats.js';
import type { ScenarioName, SystemName } from '../systems/index.js';
import { CHUNK_BYTES, ECHO_BYTES } from '../systems/scenario.js';
import {
  attempt, checkPrefix, checkTransfer, cpuPct, describeAgainst, pickPorts, receivedMiBps, roundRobin, runScenario,
  sameRunRatios, skipSuite, succeeded, suiteSystems, type Result, type Suite, type SuiteOptions,
} from './common.js';

const WARMUP_MS = 500;
const DEFAULT_SECONDS = 2;
const DEFAULT_RUNS = 2;
const P99_TARGET = 2;

interface Condition {
  /** As printed, and (key) in the checks' names. */
  name: string;
  key: string;
  scenario: ScenarioName;
  download: boolean;
  /** The Mesh suite: the lane the download must take at the server. */
  lane?: 'control' | 'data';
}

interface LatencySuite {
  name: string;
  title: string;
  /** The first is the idle one every other is compared with. */
  conditions: readonly Condition[];
  /** Rotate the conditions' order run by run, so none always runs first (or last) on a machine whose speed drifts. */
  rotate: boolean;
  /** The scenario is two Mesh nodes, on two loopback ports picked per run. */
  mesh: boolean;
  /** A download throughput ratio between two conditions (numerator, denominator), shown without a target. */
  throughput?: [string, string];
  notes: readonly string[];
}

const UNARY_UNDER_BULK: LatencySuite = {
  name: 'unary-under-bulk',
  title: 'unary echo p50/p99, 32 bytes, c=1, on an idle gridwire connection vs. beside a bulk download on the same one',
  conditions: [
    { name: 'idle', key: 'idle', scenario: 'unary-idle', download: false },
    { name: 'under bulk download', key: 'under_bulk', scenario: 'unary-under-bulk', download: true },
  ],
  rotate: false,
  mesh: false,
  notes: [],
};

const LANE_LATENCY: LatencySuite = {
  name: 'lane-latency',
  title:
    'Mesh data lane: unary echo p50/p99, 32 bytes, c=1, idle vs. beside a bulk download on the same connection vs. on the data lane',
  conditions: [
    { name: 'idle', key: 'idle', scenario: 'mesh-idle', download: false, lane: 'control' },
    { name: 'same conn', key: 'same_connection', scenario: 'mesh-beside-download', download: true, lane: 'control' },
    { name: 'data lane', key: 'data_lane', scenario: 'mesh-data-lane', download: true, lane: 'data' },
  ],
  rotate: true,
  mesh: true,
  throughput: ['data_lane', 'same_connection'],
  notes: ["two Mesh nodes (a: client, the pair's dialer; b: server), one process each, loopback TCP; fresh processes per condition"],
};

interface Key {
  condition: string;
  system: SystemName;
  run: number;
}

/** What one run of a c=1 echo measured at the client, and what both sides cost (% of one core, user + system). */
interface Figures {
  callsPerSec: number;
  p50Us: number;
  p99Us: number;
  /** The download's throughput beside the calls; NaN without one. */
  downloadMiBps: number;
  cpuClientPct: number;
  cpuServerPct: number;
  /** The Mesh suite: calls by kind and the lane they arrived on at the server, e.g. { echoOn_control: 9120 }. */
  lanes?: Record<string, number>;
}

/** Throws unless every call took the lane the condition asks for (echo calls always the control lane). */
function checkLanes(c: Condition, server: SideReport): void {
  const f = server.facts;
  const echoElsewhere = Object.keys(f).filter((k) => k.startsWith('echoOn_') && k !== 'echoOn_control');
  if (echoElsewhere.length > 0) throw new Error(`echo calls off the control lane: ${JSON.stringify(f)}`);
  const want = c.download ? `downloadOn_${c.lane ?? 'control'}` : undefined;
  const downloads = Object.entries(f).filter(([k]) => k.startsWith('downloadOn_'));
  const ok = want === undefined ? downloads.length === 0 : downloads.length === 1 && f[want] === 1;
  if (!ok) throw new Error(`download expected on ${c.download ? c.lane : 'no lane'}, server saw ${JSON.stringify(f)}`);
}

function figures(suite: LatencySuite, c: Condition, { client, server }: PairReports): Figures {
  if (c.download) checkTransfer(server, client);
  if (suite.mesh) checkLanes(c, server);
  if (client.latency.count === 0) throw new Error('no echo call completed inside the window');
  const total = (r: SideReport): number => cpuPct(r).user + cpuPct(r).sys;
  return {
    callsPerSec: client.latency.count / (client.elapsedMs / 1000),
    p50Us: client.latency.p50Us,
    p99Us: client.latency.p99Us,
    downloadMiBps: c.download ? receivedMiBps(client) : NaN,
    cpuClientPct: total(client),
    cpuServerPct: total(server),
    ...(suite.mesh ? { lanes: server.facts } : {}),
  };
}

const describe = (r: Figures): string =>
  `${r.callsPerSec.toFixed(0).padStart(6)} calls/s  p50 ${r.p50Us.toFixed(0)} µs  p99 ${r.p99Us.toFixed(0)} µs  ` +
  `download ${fmt(r.downloadMiBps)} MiB/s  CPU ${r.cpuClientPct.toFixed(0)}/${r.cpuServerPct.toFixed(0)}%` +
  (r.lanes ? `  lanes ${JSON.stringify(r.lanes)}` : '');

async function runLatencySuite(suite: LatencySuite, options: SuiteOptions): Promise<object> {
  const { systems, notes: skipped } = await suiteSystems(options, ['gridwire', 'gridwire@base']);
  if (!systems.includes('gridwire')) return skipSuite(suite.name, suite.title, skipped[0] ?? 'gridwire not in --only');
  const notes = [...skipped, ...options.notes, ...suite.notes, ...describeAgainst(options)];
  const seconds = options.seconds ?? DEFAULT_SECONDS;
  const runs = options.runs ?? DEFAULT_RUNS;
  const launch = pairLaunch(options.against);
  const conditions = suite.conditions;

  const results: Result<Key, Figures>[] = [];
  for (let run = 1; run <= runs; run++) {
    const order = suite.rotate ? conditions.map((_, i) => conditions[(i + run - 1) % conditions.length]!) : conditions;
    for (const c of order) {
      for (const system of roundRobin(systems, run)) {
        const label = `[${suite.name} ${run}/${runs}] ${c.name.padEnd(19)} ${system.padEnd(13)}`;
        const measure = async (): Promise<Figures> => {
          const [server, client] = suite.mesh ? await pickPorts(2) : [];
          const meshUrls = suite.mesh ? { server: `tcp://127.0.0.1:${server}`, client: `tcp://127.0.0.1:${client}` } : null;
          const spec = { meshUrls, waitArmed: suite.mesh, warmupMs: WARMUP_MS, windowMs: seconds * 1000, pin: options.pin };
          return figures(suite, c, await runScenario(launch, system, c.scenario, spec));
        };
        results.push(await attempt(label, { condition: c.name, system, run }, measure, describe));
      }
    }
  }

  const ratio = (f: (r: Figures) => number, [numSystem, num]: [SystemName, Condition], [denSystem, den]: [SystemName, Condition]) =>
    sameRunRatios(results, runs, { system: numSystem, condition: num.name }, { system: denSystem, condition: den.name }, f);
  const p99 = (r: Figures): number => r.p99Us;
  const idle = conditions[0]!;
  const checks: Record<string, Check> = {};
  for (const system of systems) {
    const prefix = checkPrefix(system);
    for (const c of conditions.slice(1)) {
      checks[`${prefix}p99_${c.key}_vs_idle`] = check(ratio(p99, [system, c], [system, idle]), 'x', { sense: '<=', value: P99_TARGET });
    }
    if (suite.throughput) {
      const [num, den] = suite.throughput.map((key) => conditions.find((c) => c.key === key)!) as [Condition, Condition];
      checks[`${prefix}download_${num.key}_vs_${den.key}`] = check(ratio((r) => r.downloadMiBps, [system, num], [system, den]), 'x');
    }
  }
  if (systems.includes('gridwire@base')) {
    for (const c of conditions) checks[`p99_${c.key}_gridwire_vs_base`] = check(ratio(p99, ['gridwire', c], ['gridwire@base', c]), 'x');
  }
  const rows = conditions.flatMap((c) =>
    systems.map((system) => {
      const vsIdle = c === idle ? [] : ratio(p99, [system, c], [system, idle]);
      return summarise(c.name, system, results.filter((r) => r.condition === c.name && r.system === system), vsIdle);
    }),
  );

  console.log(`\n${suite.title}, ${runs} run(s) x ${seconds} s window`);
  for (const n of notes) console.log(`note: ${n}`);
  console.log(`\n${formatRows(rows)}\n`);
  console.log('p99 beside the download / p99 idle, within the same run (median over runs):');
  console.log(formatChecks(checks));
  const config = { seconds, runs, warmupMs: WARMUP_MS, pinned: options.pin, echoBytes: ECHO_BYTES, chunkBytes: CHUNK_BYTES, against: options.against, notes };
  return { bench: suite.name, checks, results: rows, config };
}

/** The figures are medians over the runs that succeeded. */
interface Row extends Omit<Figures, 'lanes'> {
  condition: string;
  system: SystemName;
  runsOk: number;
  runs: number;
  /** Median of the per-run p99 / idle p99 ratios. */
  p99VsIdle: number;
  perRun: Result<Key, Figures>[];
}

function summarise(condition: string, system: SystemName, perRun: Result<Key, Figures>[], vsIdle: number[]): Row {
  const ok = succeeded(perRun);
  const med = (pick: (r: Figures) => number): number => median(ok.map(pick));
  return {
    condition, system, runsOk: ok.length, runs: perRun.length,
    callsPerSec: med((r) => r.callsPerSec), p50Us: med((r) => r.p50Us), p99Us: med((r) => r.p99Us),
    downloadMiBps: med((r) => r.downloadMiBps),
    cpuClientPct: med((r) => r.cpuClientPct), cpuServerPct: med((r) => r.cpuServerPct),
    p99VsIdle: median(vsIdle),
    perRun,
  };
}

function formatRows(rows: Row[]): string {
  const head = ['condition', 'system', 'calls/s', 'p50 µs', 'p99 µs', 'p99 per run µs', 'p99 / idle', 'download MiB/s', 'CPU cli/srv %', 'runs ok'];
  const body = rows.map((r) => [
    r.condition,
    r.system,
    fmt(r.callsPerSec),
    fmt(r.p50Us),
    fmt(r.p99Us),
    succeeded(r.perRun).map((x) => fmt(x.p99Us)).join(', '),
    Number.isFinite(r.p99VsIdle) ? `${r.p99VsIdle.toFixed(2)}x` : '',
    fmt(r.downloadMiBps),
    `${fmt(r.cpuClientPct)} / ${fmt(r.cpuServerPct)}`,
    `${r.runsOk}/${r.runs}`,
  ]);
  return markdownTable(head, body, 2);
}

export const runUnaryUnderBulkSuite: Suite = (options) => runLatencySuite(UNARY_UNDER_BULK, options);
export const runLaneLatencySuite: Suite = (options) => runLatencySuite(LANE_LATENCY, options);
