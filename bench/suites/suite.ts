// What every suite gets from run.ts and gives back, and the helpers the suites share: running one scenario in fresh
// processes, free loopback ports, the figures of a c=1 echo (mixed, lanes), same-run ratio checks against a target,
// and the SKIPPED section. No printing of tables here.
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { runPair } from '../harness.js';
import type { ScenarioReport } from '../protocol.js';
import { median } from '../stats.js';
import type { SystemName } from '../systems/index.js';
import type { ScenarioName, ScenarioSystem } from '../scenarios/index.js';
import { MiB } from '../scenarios/scenario.js';
import { fmt } from '../table.js';

export interface SuiteOptions {
  /** --seconds when given; otherwise each suite uses its own default window. */
  seconds: number | undefined;
  /** --runs when given; otherwise each suite uses its own default. */
  runs: number | undefined;
  /** --only, in registry order. */
  systems: readonly SystemName[];
  concurrencies: readonly number[];
  pin: boolean;
  /** Notes every suite prints, e.g. how the workers are pinned. */
  notes: readonly string[];
}

/** A suite runs its measurements, prints its section on stdout (progress on stderr) and returns its JSON. */
export type Suite = (options: SuiteOptions) => Promise<object>;

const SCENARIO_WORKER = fileURLToPath(new URL('../scenarios/worker.ts', import.meta.url));
/** Hard limit per run beyond warmup and window: process start-up, set-up, the clean end and shutdown. */
const RUN_OVERHEAD_LIMIT_MS = 30_000;

export interface ScenarioRunSpec {
  warmupMs: number;
  windowMs: number;
  pin: boolean;
  /** Wait for the client's set-up (`armed`) before the warmup. */
  waitArmed?: boolean;
  nodeArgs?: string[];
  /** A compiled (plain JS) scenario worker to run instead of the TypeScript one (see compiled.ts). */
  compiledWorker?: string;
}

export interface ScenarioReports {
  client: ScenarioReport;
  server: ScenarioReport;
}

export async function runScenario(system: ScenarioSystem, scenario: ScenarioName, spec: ScenarioRunSpec): Promise<ScenarioReports> {
  const { client, server } = await runPair({
    label: `${system} ${scenario}`,
    worker: spec.compiledWorker ?? SCENARIO_WORKER,
    compiled: spec.compiledWorker !== undefined,
    serverArgs: [scenario, system, 'server'],
    clientArgs: (target) => [scenario, system, 'client', target],
    waitArmed: spec.waitArmed ?? false,
    nodeArgs: spec.nodeArgs,
    warmupMs: spec.warmupMs,
    windowMs: spec.windowMs,
    pin: spec.pin,
    timeoutMs: spec.warmupMs + spec.windowMs + RUN_OVERHEAD_LIMIT_MS,
  });
  if (client.role !== 'scenario' || server.role !== 'scenario') throw new Error('expected scenario reports');
  return { client, server };
}

/** Payload bytes `r` received inside the window, per second, in MiB/s. */
export function receivedMiBps(r: ScenarioReport): number {
  return (r.marks[1].receivedBytes - r.marks[0].receivedBytes) / MiB / (r.elapsedMs / 1000);
}

/** Throws unless everything the sender sent reached the receiver: the transfer ended clean and whole. */
export function checkTransfer(sender: ScenarioReport, receiver: ScenarioReport): void {
  const { sentBytes } = sender.final;
  const { receivedBytes } = receiver.final;
  if (sentBytes === 0 || sentBytes !== receivedBytes) {
    throw new Error(`byte count check failed: ${sender.side} sent ${sentBytes}, ${receiver.side} received ${receivedBytes}`);
  }
}

/** % of one core (user, system) over the window. */
export function cpuPct(r: ScenarioReport): { user: number; sys: number } {
  return { user: r.cpu.userUs / (r.elapsedMs * 10), sys: r.cpu.systemUs / (r.elapsedMs * 10) };
}

export const errorMessage = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** Prints a suite's SKIPPED section (stdout) and its reason (stderr); returns the suite's JSON. */
export function skipSuite(suite: string, title: string, why: string, bench = suite): { bench: string; skipped: string } {
  console.error(`bench: ${suite} suite SKIPPED: ${why}`);
  console.log(`\n${title}\nnote: SKIPPED: ${why}`);
  return { bench, skipped: why };
}

/** `n` free loopback ports: bound to 127.0.0.1:0 all at once (so distinct), then released for the workers to take. */
export async function pickPorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<net.Server>((resolve, reject) => {
      const s = net.createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => resolve(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

// ---- a c=1 echo beside (or without) a download: the mixed and lanes suites ----

/** What one run of a c=1 echo measured at the client, and what both sides cost (% of one core, user + system). */
export interface EchoFigures {
  callsPerSec: number;
  p50Us: number;
  p99Us: number;
  /** The download's throughput beside the calls. */
  downloadMiBps: number;
  cpuClientPct: number;
  cpuServerPct: number;
}

/** The figures of a failed run. */
export const FAILED_ECHO: EchoFigures = {
  callsPerSec: NaN, p50Us: NaN, p99Us: NaN, downloadMiBps: NaN, cpuClientPct: NaN, cpuServerPct: NaN,
};

/** The figures of one run; throws when no echo call completed inside the window. */
export function echoFigures(client: ScenarioReport, server: ScenarioReport, downloadMiBps: number): EchoFigures {
  if (client.latency.count === 0) throw new Error('no echo call completed inside the window');
  const total = (r: ScenarioReport): number => cpuPct(r).user + cpuPct(r).sys;
  return {
    callsPerSec: client.latency.count / (client.elapsedMs / 1000),
    p50Us: client.latency.p50Us,
    p99Us: client.latency.p99Us,
    downloadMiBps,
    cpuClientPct: total(client),
    cpuServerPct: total(server),
  };
}

/** Each figure's median over the runs given (the ones that succeeded). */
export function medianEcho(ok: readonly EchoFigures[]): EchoFigures {
  const med = (pick: (r: EchoFigures) => number): number => median(ok.map(pick));
  return {
    callsPerSec: med((r) => r.callsPerSec), p50Us: med((r) => r.p50Us), p99Us: med((r) => r.p99Us),
    downloadMiBps: med((r) => r.downloadMiBps),
    cpuClientPct: med((r) => r.cpuClientPct), cpuServerPct: med((r) => r.cpuServerPct),
  };
}

/** The progress line's figures: calls/s, p50, p99, download MiB/s and CPU client/server. */
export function describeEcho(r: EchoFigures): string {
  return (
    `${r.callsPerSec.toFixed(0).padStart(6)} calls/s  p50 ${r.p50Us.toFixed(0)} µs  p99 ${r.p99Us.toFixed(0)} µs  ` +
    `download ${fmt(r.downloadMiBps)} MiB/s  CPU ${r.cpuClientPct.toFixed(0)}/${r.cpuServerPct.toFixed(0)}%`
  );
}

// ---- same-run ratio checks ----

export interface RatioCheck {
  /** Median over runs of the per-run ratio; null when no run measured both sides. */
  median: number | null;
  perRun: number[];
  target: number;
  /** Whether the ratio must reach the target ('>=') or stay under it ('<='). */
  sense: '>=' | '<=';
  met: boolean | null;
}

export function ratioCheck(perRun: number[], sense: RatioCheck['sense'], target: number): RatioCheck {
  const finite = perRun.filter(Number.isFinite);
  const m = finite.length ? median(finite) : null;
  const met = m === null ? null : sense === '>=' ? m >= target : m <= target;
  return { median: m, perRun: finite, target, sense, met };
}

export function formatChecks(checks: Record<string, RatioCheck>): string {
  const width = Math.max(...Object.keys(checks).map((k) => k.length));
  return Object.entries(checks)
    .map(([key, r]) => {
      const value = r.median === null ? 'not measured' : `${r.median.toFixed(2)}x`;
      const runs = r.perRun.length ? ` (per run: ${r.perRun.map((x) => x.toFixed(2)).join(', ')})` : '';
      const verdict = r.met === null ? '' : r.met ? '  MET' : '  NOT MET';
      return `  ${key.padEnd(width)} ${value.padStart(12)}  target ${r.sense} ${r.target}x${verdict}${runs}`;
    })
    .join('\n');
}

/** Whether the gridwire rows can run: null when the streaming API imports, else why not. */
export async function probeGridwireStreams(): Promise<string | null> {
  try {
    const { loadGridwireStreams } = await import('../scenarios/gridwire-api.js');
    await loadGridwireStreams();
    return null;
  } catch (err) {
    return errorMessage(err).split('\n')[0] ?? 'unknown';
  }
}
