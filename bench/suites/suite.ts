// What every suite gets from run.ts and gives back, and the helpers the scenario suites (bulk, mixed, rss) share:
// running one scenario in fresh processes, and same-run ratio checks against a target. No printing of tables here.
import { fileURLToPath } from 'node:url';
import { runPair } from '../harness.js';
import type { ScenarioReport } from '../protocol.js';
import { median } from '../stats.js';
import type { SystemName } from '../systems/index.js';
import type { ScenarioName, ScenarioSystem } from '../scenarios/index.js';
import { MiB } from '../scenarios/scenario.js';

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
