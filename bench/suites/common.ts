// What every suite gets from run.ts and gives back, and what the suites share: the systems a suite can run (gridwire
// libraries probed), the round-robin order, one scenario run in fresh processes, one measurement that may fail,
// transfer figures and checks, free loopback ports and the SKIPPED section.
import net from 'node:net';
import type { SideReport } from '../messages.js';
import { runPair, pairLaunch, type Launch, type PairReports, type PairSpec } from '../processes.js';
import { errorMessage } from '../report.js';
import { loadGridwire } from '../systems/gridwire-api.js';
import { isGridwire, type ScenarioName, type SystemName } from '../systems/index.js';
import { MiB, type EchoPayload } from '../systems/scenario.js';

export interface SuiteOptions {
  /** --seconds when given; otherwise each suite uses its own default window. */
  seconds: number | undefined;
  /** --runs when given; otherwise each suite uses its own default. */
  runs: number | undefined;
  /** --only, plus gridwire@base with --against, in registry order. */
  systems: readonly SystemName[];
  concurrencies: readonly number[];
  /** --payload: what each unary call carries. */
  payloads: readonly EchoPayload[];
  pin: boolean;
  /** --against: the root of the other checkout gridwire@base imports, or null. */
  against: string | null;
  /** Notes every suite prints, e.g. how the workers are pinned. */
  notes: readonly string[];
  /** --attack: the dos suite's attacks to run (null: all). */
  attacks: readonly string[] | null;
}

/** A suite runs its measurements, prints its section on stdout (progress on stderr) and returns its JSON. */
export type Suite = (options: SuiteOptions) => Promise<object>;

// ---- systems ----

const probes = new Map<string, Promise<string | null>>();

/** Null when the library at `url` imports with everything the bench needs, else why not (first line). */
export function probeLibrary(url: string): Promise<string | null> {
  let p = probes.get(url);
  if (p === undefined) {
    p = loadGridwire(url).then(
      () => null,
      (err: unknown) => errorMessage(err).split('\n')[0] ?? 'unknown',
    );
    probes.set(url, p);
  }
  return p;
}

/**
 * The systems of --only (and --against) that this suite measures, in registry order, without the gridwire ones whose
 * library does not import: each of those gets a SKIPPED note (returned, and printed on stderr).
 */
export async function suiteSystems(options: SuiteOptions, known: readonly SystemName[]): Promise<{ systems: SystemName[]; notes: string[] }> {
  const launch = pairLaunch(options.against);
  const systems: SystemName[] = [];
  const notes: string[] = [];
  for (const system of options.systems.filter((s) => known.includes(s))) {
    const why = isGridwire(system) ? await probeLibrary(launch.libraries[system] ?? '') : null;
    if (why === null) systems.push(system);
    else notes.push(`${system} SKIPPED: ${why}`);
  }
  for (const n of notes) console.error(`bench: ${n}`);
  return { systems, notes };
}

/** The systems in registry order, except that on even runs gridwire@base goes before gridwire (neither always first). */
export function roundRobin(systems: readonly SystemName[], run: number): SystemName[] {
  const order = [...systems];
  const a = order.indexOf('gridwire');
  const b = order.indexOf('gridwire@base');
  if (run % 2 === 0 && a >= 0 && b >= 0) [order[a], order[b]] = [order[b]!, order[a]!];
  return order;
}

/** The label gridwire@base is printed with: which checkout it is. */
export function describeAgainst(options: SuiteOptions): string[] {
  return options.against === null ? [] : [`gridwire@base is the library of ${options.against}, driven by this checkout's bench`];
}

// ---- runs ----

/** Hard limit per run beyond warmup and window: process start-up, set-up, the clean end and shutdown. */
const RUN_OVERHEAD_LIMIT_MS = 30_000;

export interface ScenarioRun extends Partial<Omit<PairSpec['side'], 'system' | 'scenario'>> {
  warmupMs: number;
  windowMs: number;
  pin: boolean;
  waitArmed?: boolean;
  nodeArgs?: string[];
}

/** One run of `scenario` on `system` in a fresh server and client process. */
export function runScenario(launch: Launch, system: SystemName, scenario: ScenarioName, run: ScenarioRun): Promise<PairReports> {
  const { warmupMs, windowMs, pin, waitArmed = false, nodeArgs } = run;
  return runPair({
    label: `${system} ${scenario}`,
    launch,
    side: {
      system,
      scenario,
      concurrency: run.concurrency ?? 1,
      payload: run.payload ?? 'bytes',
      meshUrls: run.meshUrls ?? null,
      body: run.body ?? 'generator',
      samplePeakRss: run.samplePeakRss ?? false,
    },
    waitArmed,
    nodeArgs,
    warmupMs,
    windowMs,
    pin,
    timeoutMs: warmupMs + windowMs + RUN_OVERHEAD_LIMIT_MS,
  });
}

/** One measurement: what was measured (`key`: its run, system...) and its figures, or why it failed. */
export type Result<K, F> = K & (({ ok: true } & F) | { ok: false; error: string });
export type Success<K, F> = K & { ok: true } & F;

/** Runs one measurement and prints its progress line; a failure becomes a failed result, never an exception. */
export async function attempt<K extends object, F extends object>(
  label: string,
  key: K,
  measure: () => Promise<F>,
  describe: (f: F) => string,
): Promise<Result<K, F>> {
  try {
    const figures = await measure();
    console.error(`${label} ${describe(figures)}`);
    return { ...key, ok: true, ...figures } as Result<K, F>;
  } catch (err) {
    const error = errorMessage(err);
    console.error(`${label} FAILED: ${error}`);
    return { ...key, ok: false, error } as Result<K, F>;
  }
}

export function succeeded<K, F>(results: readonly Result<K, F>[]): Success<K, F>[] {
  return results.filter((r): r is Success<K, F> => r.ok);
}

/** f(run) for run = 1..runs. */
export function perRun(runs: number, f: (run: number) => number): number[] {
  return Array.from({ length: runs }, (_, i) => f(i + 1));
}

/** pick() of the successful result of `run` that matches `match` (e.g. { system: 'raw' }), or NaN. */
export function figureOf<K extends { run: number }, F>(
  results: readonly Result<K, F>[],
  run: number,
  match: Partial<K>,
  pick: (r: Success<K, F>) => number,
): number {
  const keys = Object.keys(match) as (keyof K)[];
  const r = succeeded(results).find((x) => x.run === run && keys.every((k) => x[k] === match[k]));
  return r === undefined ? NaN : pick(r);
}

/** Per run, pick(num) / pick(den), both taken from that run: a same-run ratio (NaN for a run where either failed). */
export function sameRunRatios<K extends { run: number }, F>(
  results: readonly Result<K, F>[],
  runs: number,
  num: Partial<K>,
  den: Partial<K>,
  pick: (r: Success<K, F>) => number,
): number[] {
  return perRun(runs, (run) => figureOf(results, run, num, pick) / figureOf(results, run, den, pick));
}

/** Checks of gridwire@base are named like gridwire's with this prefix. */
export const checkPrefix = (system: SystemName): string => (system === 'gridwire@base' ? 'base_' : '');

// ---- transfers ----

/** Payload bytes `r` received inside the window, per second, in MiB/s. */
export function receivedMiBps(r: SideReport): number {
  return (r.marks[1].receivedBytes - r.marks[0].receivedBytes) / MiB / (r.elapsedMs / 1000);
}

/** Throws unless everything the sender sent reached the receiver: the transfer ended clean and whole. */
export function checkTransfer(sender: SideReport, receiver: SideReport): void {
  const { sentBytes } = sender.final;
  const { receivedBytes } = receiver.final;
  if (sentBytes === 0 || sentBytes !== receivedBytes) {
    throw new Error(`byte count check failed: ${sender.side} sent ${sentBytes}, ${receiver.side} received ${receivedBytes}`);
  }
}

/** % of one core (user, system) over the window. */
export function cpuPct(r: SideReport): { user: number; sys: number } {
  return { user: r.cpu.userUs / (r.elapsedMs * 10), sys: r.cpu.systemUs / (r.elapsedMs * 10) };
}

// ---- the rest ----

/** Prints a suite's SKIPPED section (stdout) and its reason (stderr); returns the suite's JSON. */
export function skipSuite(suite: string, title: string, why: string): { bench: string; skipped: string } {
  console.error(`bench: ${suite} suite SKIPPED: ${why}`);
  console.log(`\n${title}\nnote: SKIPPED: ${why}`);
  return { bench: suite, skipped: why };
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
