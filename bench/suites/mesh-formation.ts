// Suite `mesh-formation`: how long 32 node processes on loopback take to form a full mesh (src/mesh/, default
// options) and complete one unary call on every ordered pair (32 x 31 calls), from the moment the orchestrator spawns
// them to the moment the last node reports its 31 calls done. The nodes run as plain JS (processes.ts
// compiledLaunch): under tsx their start-up alone would take longer than the target. Each run measures, in fresh
// processes, for gridwire (and gridwire@base with --against):
//   cold       each node starts its mesh as soon as it is loaded, as a fleet started by a supervisor would: early
//              nodes dial peers that are not listening yet and back off (the target figure)
//                total           spawn -> last node done
//                to listening    spawn -> last node listening (process start-up, library import, bind)
//                after           last node listening -> last node done
//   barrier    every node listens with no peers; once all are listening the orchestrator sends `go` and each adds its
//              31 peers: the mesh's own part (dials, handshakes, calls) without start-up stagger or backoff
//                after go        `go` sent -> last node done
//   baselines  32 x `node -e ''` spawned at once, spawn -> last exit; 32 x importing the compiled library and exiting
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import type { MeshNodeReport } from '../messages.js';
import { compiledLaunch, Fleet, libraryOf, timeSpawnExit, type Launch } from '../processes.js';
import { check, fmt, formatChecks, markdownTable, type Check } from '../report.js';
import { median } from '../stats.js';
import type { SystemName } from '../systems/index.js';
import {
  attempt, checkPrefix, describeAgainst, figureOf, perRun, pickPorts, roundRobin, sameRunRatios, skipSuite, succeeded,
  suiteSystems, type Result, type SuiteOptions,
} from './common.js';

const NODES = 32;
const DEFAULT_RUNS = 2;
const TARGET_MS = 5000;
const RUN_TIMEOUT_MS = 90_000;
const CPUS = os.availableParallelism();
/** USER_HZ: /proc/stat counts in 1/100 s on every Linux Node runs on. */
const CLOCK_TICKS = 100;
/** Wall-clock ms, the clock the nodes report in (roles/child.ts wallMs). */
const wallMs = (): number => performance.timeOrigin + performance.now();

interface Lag {
  pairs: number;
  p50Ms: number;
  maxMs: number;
}

/** One mesh formation, all times in ms from the spawn of the first node. */
interface Formation {
  /** Last node's main started (performance.timeOrigin), library loaded, listening, peers added, done. */
  startedMs: number;
  loadedMs: number;
  listeningMs: number;
  goMs: number;
  totalMs: number;
  /** Medians over nodes of each node's own phases: load (start -> Mesh built), listen (mesh.start()), calls (peers added -> its 31 calls done). */
  nodeLoadMs: number;
  nodeListenMs: number;
  nodeCallsMs: number;
  /** Lane backoffs after a failure, summed over nodes by error shape, and the longest announced delay. */
  backoffs: Record<string, number>;
  maxBackoffMs: number;
  /**
   * Per ordered pair a -> b, the lag: a's call to b done, ms after both a and b had added their peers. Split by whether
   * the pair's connection went through a backoff (a dial refused, typically: the peer was not listening yet).
   */
  lagClean: Lag;
  lagBackoff: Lag;
  /** CPU of all nodes together, start to done, ms; and as a share of the machine's CPUs over the total time. */
  cpuMs: number;
  cpuUtilisation: number;
  /** CPU the whole machine used from spawn to done (all processes, /proc/stat), as a share of its CPUs. */
  machineUtilisation: number;
  warnings: number;
}

interface Key {
  system: SystemName;
  run: number;
}

interface Figures {
  /** 32 x `node -e ''`: spawn -> last exit. */
  emptyMs: number;
  /** 32 x import the compiled library and exit. */
  importMs: number;
  cold: Formation;
  barrier: Formation;
}

async function formMesh(launch: Launch, library: string, barrier: boolean): Promise<Formation> {
  const urls = (await pickPorts(NODES)).map((port) => `tcp://127.0.0.1:${port}`);
  const fleet = new Fleet(RUN_TIMEOUT_MS, launch);
  try {
    const machine0 = machineCpuMs();
    const t0 = wallMs();
    for (let index = 0; index < NODES; index++) fleet.spawn(`mesh node n${index}`, { role: 'mesh-node', library, index, urls, barrier });
    if (barrier) {
      await fleet.guard(Promise.all(fleet.workers.map((w) => w.next('listening'))));
      for (const w of fleet.workers) w.send({ t: 'go' });
    }
    const reports = await fleet.guard(Promise.all(fleet.workers.map((w) => w.next('done').then((m) => m.report))));
    const machineMs = machineCpuMs() - machine0;
    return summarise(t0, reports, machineMs);
  } finally {
    await fleet.close();
  }
}

/** CPU time the whole machine has spent busy since boot (all CPUs, /proc/stat), ms; NaN off Linux. */
function machineCpuMs(): number {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait
    const busy = fields.slice(0, 8).reduce((s, v, i) => (i === 3 || i === 4 ? s : s + v), 0);
    return (busy * 1000) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

function lagOf(lags: number[]): Lag {
  const sorted = [...lags].sort((a, b) => a - b);
  return { pairs: sorted.length, p50Ms: median(sorted), maxMs: sorted[sorted.length - 1] ?? NaN };
}

function summarise(t0: number, reports: MeshNodeReport[], machineMs: number): Formation {
  const last = (pick: (r: MeshNodeReport) => number): number => Math.max(...reports.map(pick)) - t0;
  const med = (pick: (r: MeshNodeReport) => number): number => median(reports.map(pick));
  const backoffs: Record<string, number> = {};
  for (const r of reports) for (const [k, v] of Object.entries(r.backoffs)) backoffs[k] = (backoffs[k] ?? 0) + v;
  const byName = new Map(reports.map((r) => [r.name, r]));
  const clean: number[] = [];
  const backedOff: number[] = [];
  for (const r of reports) {
    for (const [peer, at] of Object.entries(r.callDoneAt)) {
      const other = byName.get(peer);
      const lag = at - Math.max(r.goAt, other?.goAt ?? NaN);
      const backoff = r.backoffPeers.includes(peer) || (other?.backoffPeers.includes(r.name) ?? false);
      (backoff ? backedOff : clean).push(lag);
    }
  }
  const cpuMs = reports.reduce((s, r) => s + (r.cpu.userUs + r.cpu.systemUs) / 1000, 0);
  const totalMs = last((r) => r.doneAt);
  return {
    startedMs: last((r) => r.startedAt),
    loadedMs: last((r) => r.loadedAt),
    listeningMs: last((r) => r.listeningAt),
    // the first `go` to arrive: the orchestrator sent them all in one loop
    goMs: Math.min(...reports.map((r) => r.goAt)) - t0,
    totalMs,
    nodeLoadMs: med((r) => r.loadedAt - r.startedAt),
    nodeListenMs: med((r) => r.listeningAt - r.loadedAt),
    nodeCallsMs: med((r) => r.doneAt - r.goAt),
    backoffs,
    maxBackoffMs: Math.max(0, ...reports.map((r) => r.maxBackoffMs)),
    lagClean: lagOf(clean),
    lagBackoff: lagOf(backedOff),
    cpuMs,
    cpuUtilisation: cpuMs / (totalMs * CPUS),
    machineUtilisation: machineMs / (totalMs * CPUS),
    warnings: reports.reduce((s, r) => s + r.warnings, 0),
  };
}

const describeBackoffs = (f: Formation): string => {
  const entries = Object.entries(f.backoffs);
  if (entries.length === 0) return 'none';
  return `${entries.map(([k, v]) => `${v} ${k}`).join(', ')} (longest delay ${fmt(f.maxBackoffMs)} ms)`;
};

const describe = (r: Figures): string => {
  const { cold: c, barrier: b } = r;
  return (
    `cold: total ${fmt(c.totalMs)} ms (all listening at ${fmt(c.listeningMs)}, then ${fmt(c.totalMs - c.listeningMs)}; ` +
    `backoffs ${describeBackoffs(c)}); barrier: go -> done ${fmt(b.totalMs - b.goMs)} ms (backoffs ${describeBackoffs(b)}, ` +
    `warnings ${b.warnings}); baselines: node -e '' ${fmt(r.emptyMs)} ms, import ${fmt(r.importMs)} ms`
  );
};

async function measure(launch: Launch, system: SystemName): Promise<Figures> {
  const library = libraryOf(launch, system);
  const emptyMs = await timeSpawnExit(NODES, ['-e', '']);
  const importMs = await timeSpawnExit(NODES, [...launch.loader, launch.script, JSON.stringify({ role: 'load-only', library })]);
  const cold = await formMesh(launch, library, false);
  const barrier = await formMesh(launch, library, true);
  return { emptyMs, importMs, cold, barrier };
}

export async function runMeshFormationSuite(options: SuiteOptions): Promise<object> {
  const title = `mesh formation: ${NODES} node processes on loopback TCP, full mesh, one unary call per ordered pair (${NODES * (NODES - 1)} calls)`;
  const { systems, notes: skipped } = await suiteSystems(options, ['gridwire', 'gridwire@base']);
  if (!systems.includes('gridwire')) return skipSuite('mesh-formation', title, skipped[0] ?? 'gridwire not in --only');
  const runs = options.runs ?? DEFAULT_RUNS;
  const launch = compiledLaunch(options.against);
  const results: Result<Key, Figures>[] = [];
  for (let run = 1; run <= runs; run++) {
    for (const system of roundRobin(systems, run)) {
      results.push(await attempt(`[mesh-formation ${run}/${runs}] ${system.padEnd(13)}`, { system, run }, () => measure(launch, system), describe));
    }
  }

  const ok = succeeded(results);
  const figure = (system: SystemName, pick: (r: Figures) => number): number[] =>
    perRun(runs, (run) => figureOf(results, run, { system }, pick));
  const total = (r: Figures): number => r.cold.totalMs;
  const goToDone = (r: Figures): number => r.barrier.totalMs - r.barrier.goMs;
  const checks: Record<string, Check> = {};
  for (const system of systems) {
    const prefix = checkPrefix(system);
    checks[`${prefix}mesh_total_ms`] = check(figure(system, total), 'ms', { sense: '<', value: TARGET_MS });
    checks[`${prefix}cold_total_minus_spawn_baseline`] = check(figure(system, (r) => r.cold.totalMs - r.emptyMs), 'ms');
    checks[`${prefix}barrier_go_to_all_done`] = check(figure(system, goToDone), 'ms');
    checks[`${prefix}cold_total_over_spawn_baseline`] = check(figure(system, (r) => r.cold.totalMs / r.emptyMs), 'x');
  }
  if (systems.includes('gridwire@base')) {
    for (const [name, pick] of [['cold_total', total], ['barrier_go_to_done', goToDone]] as const) {
      checks[`${name}_gridwire_vs_base`] = check(sameRunRatios(results, runs, { system: 'gridwire' }, { system: 'gridwire@base' }, pick), 'x');
    }
  }

  console.log(`\n${title}, ${runs} run(s)`);
  for (const n of [...skipped, ...describeAgainst(options)]) console.log(`note: ${n}`);
  console.log("note: nodes unpinned (32 processes on the machine's CPUs), plain JS compiled by tsc (into node_modules/.cache/gridwire-bench),");
  console.log('note: default mesh options (refused dials retried within 250 ms for the first 10 s, then doubling; fallback dial after 3 s; keepalive 30 s)\n');
  console.log(formatRuns(results));
  console.log('\nper node, medians over nodes: load = process start -> library imported and Mesh built; listen = mesh.start();');
  console.log('calls = peers added (cold: listening; barrier: go) -> its 31 calls done; pair lag = a\'s call to b done, after');
  console.log('both a and b had added their peers, for pairs whose connection went through a backoff after a failure or not\n');
  console.log(formatNodes(ok));
  console.log(`\nchecks (median over runs): mesh_total_ms is the cold total; the spawn baseline is ${NODES} x node -e ''; barrier go -> all done`);
  console.log("is the mesh's own part:");
  console.log(formatChecks(checks));
  return { bench: 'mesh-formation', checks, runs: results, config: { nodes: NODES, runs, transport: 'tcp', pinned: false, against: options.against } };
}

function formatRuns(results: Result<Key, Figures>[]): string {
  const head = [
    'run', 'system', 'mode', 'total ms', 'target', 'spawn -> all listening', 'all listening -> all done', 'go -> all done',
    `${NODES}x node -e ''`, `${NODES}x import lib`, `CPU ms, nodes (% of ${CPUS} CPUs; machine %)`, 'backoffs after a failure',
  ];
  const cpu = (f: Formation): string => `${fmt(f.cpuMs)} (${fmt(f.cpuUtilisation * 100)}%; ${fmt(f.machineUtilisation * 100)}%)`;
  const body: string[][] = [];
  for (const r of results) {
    if (!r.ok) {
      body.push([String(r.run), r.system, 'FAILED', r.error, '', '', '', '', '', '', '', '']);
      continue;
    }
    const { cold: c, barrier: b } = r;
    body.push([
      String(r.run), r.system, 'cold', fmt(c.totalMs), `< ${TARGET_MS}`, fmt(c.listeningMs), fmt(c.totalMs - c.listeningMs), '',
      fmt(r.emptyMs), fmt(r.importMs), cpu(c), describeBackoffs(c),
    ]);
    body.push([
      String(r.run), r.system, 'barrier', fmt(b.totalMs), '', fmt(b.listeningMs), fmt(b.totalMs - b.listeningMs), fmt(b.totalMs - b.goMs),
      '', '', cpu(b), describeBackoffs(b) + (b.warnings ? `; ${b.warnings} warnings` : ''),
    ]);
  }
  return markdownTable(head, body, 3);
}

function formatNodes(ok: (Key & Figures)[]): string {
  const head = [
    'run', 'system', 'mode', 'spawn -> last started', 'spawn -> last loaded', 'load', 'listen', 'calls',
    'pair lag p50 / max, clean (pairs)', 'pair lag p50 / max, after a backoff (pairs)',
  ];
  const lag = (l: Lag): string => (l.pairs ? `${fmt(l.p50Ms)} / ${fmt(l.maxMs)} (${l.pairs})` : '- (0)');
  const body: string[][] = [];
  for (const r of ok) {
    for (const [mode, f] of [['cold', r.cold], ['barrier', r.barrier]] as const) {
      body.push([
        String(r.run), r.system, mode, fmt(f.startedMs), fmt(f.loadedMs), fmt(f.nodeLoadMs), fmt(f.nodeListenMs, 1), fmt(f.nodeCallsMs),
        lag(f.lagClean), lag(f.lagBackoff),
      ]);
    }
  }
  return markdownTable(head, body, 3);
}
