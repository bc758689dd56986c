// Suite `rss` (issue 3, figures 3 and 4): gridwire's memory, in resident set size of separate server and client
// processes running the scenario worker compiled to plain JS (compiled.ts: tsx's loader would add ~34 MiB each),
// started with --expose-gc so the marks show retained memory (the worker collects before each snapshot) while the
// sampled peak shows what the process really reached on the way.
//   idle-streams  IDLE_STREAMS serverStream calls opened on one connection and left idle: RSS with all of them open.
//   slow-read     a 1 GiB download read at 1 MiB/s: the server's RSS must not grow with the amount read, and what its
//                 handler produced ahead of the reader must stay within the windows plus the socket buffers.
import { readFileSync } from 'node:fs';
import type { ScenarioReport } from '../protocol.js';
import { IDLE_STREAMS, SLOW_READ_BYTES_PER_SEC } from '../scenarios/gridwire.js';
import { MiB } from '../scenarios/scenario.js';
import { median } from '../stats.js';
import { fmt, markdownTable } from '../table.js';
import { compileScenarioWorker } from './compiled.js';
import {
  errorMessage, probeGridwireStreams, runScenario, skipSuite, type ScenarioReports, type ScenarioRunSpec, type SuiteOptions,
} from './suite.js';

const DEFAULT_RUNS = 1;
/**
 * The streams are all open (`armed`) before the warmup, and RSS is read 1.5 s later. That still includes the heap V8
 * grew for the opening burst: V8 gives it back only when its memory reducer runs, some 8-20 s later and not at a
 * predictable moment (a forced GC does not shrink it), so the heap-used figures are the ones that say what the
 * streams retain.
 */
const IDLE_TIMING = { warmupMs: 500, windowMs: 1000 };
/** The pipeline fills within milliseconds at 1 MiB/s; then 4 MiB are read inside the window. */
const SLOW_TIMING = { warmupMs: 1000, windowMs: 4000 };

const IDLE_RSS_TARGET = 100 * MiB;
/** gridwire's default receive window for bulk streams (README "Options and limits"; measured with defaults). */
const BULK_WINDOW = 1 * MiB;
/** Retained RSS may wander this much over the slow-read window (allocator and heap noise), not with the bytes read. */
const SLOW_GROWTH_SLACK = 2 * MiB;

/** One process's memory in the idle-streams run, bytes. `rss` and the heap figures are after GC, all streams open. */
interface IdleMemory {
  readyRss: number;
  readyHeapUsed: number;
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  peakRss: number;
}

interface IdleResult {
  run: number;
  ok: boolean;
  error?: string;
  openMs: number;
  server: IdleMemory;
  client: IdleMemory;
}

interface SlowResult {
  run: number;
  ok: boolean;
  error?: string;
  /** Bytes the client read inside the window, and at what rate. */
  readBytes: number;
  readMiBps: number;
  /** Server RSS at ready, after GC at the start and at the end of the window, and the sampled peak. */
  serverReadyRss: number;
  serverRssStart: number;
  serverRssEnd: number;
  serverPeakRss: number;
  /** Bytes the server's handler had produced beyond what the client had read, at each mark. */
  aheadStart: number;
  aheadEnd: number;
}

const NO_MEMORY: IdleMemory = {
  readyRss: NaN, readyHeapUsed: NaN, rss: NaN, heapTotal: NaN, heapUsed: NaN, external: NaN, peakRss: NaN,
};

function idleMemory(r: ScenarioReport): IdleMemory {
  const end = r.marks[1];
  return {
    readyRss: r.ready.rss, readyHeapUsed: r.ready.heapUsed,
    rss: end.rss, heapTotal: end.heapTotal, heapUsed: end.heapUsed, external: end.external, peakRss: r.peakRss,
  };
}

function idleResult(run: number, { client, server }: ScenarioReports): IdleResult {
  const open = client.facts.idleStreamsOpen ?? 0;
  const atServer = server.facts.idleStreamsPeak ?? 0;
  if (open !== IDLE_STREAMS || atServer !== IDLE_STREAMS) {
    throw new Error(`expected ${IDLE_STREAMS} open streams, client has ${open}, server handlers ran ${atServer}`);
  }
  return { run, ok: true, openMs: client.facts.openMs ?? NaN, server: idleMemory(server), client: idleMemory(client) };
}

function slowResult(run: number, { client, server }: ScenarioReports): SlowResult {
  const readBytes = client.marks[1].receivedBytes - client.marks[0].receivedBytes;
  return {
    run, ok: true, readBytes,
    readMiBps: readBytes / MiB / (client.elapsedMs / 1000),
    serverReadyRss: server.ready.rss,
    serverRssStart: server.marks[0].rss,
    serverRssEnd: server.marks[1].rss,
    serverPeakRss: server.peakRss,
    aheadStart: server.marks[0].sentBytes - client.marks[0].receivedBytes,
    aheadEnd: server.marks[1].sentBytes - client.marks[1].receivedBytes,
  };
}

const mib = (bytes: number, digits = 1): string => fmt(bytes / MiB, digits);

const describeIdle = (r: IdleResult): string =>
  `opened in ${fmt(r.openMs)} ms; RSS server ${mib(r.server.rss)} MiB (ready ${mib(r.server.readyRss)}), ` +
  `client ${mib(r.client.rss)} MiB (ready ${mib(r.client.readyRss)})`;

const describeSlow = (r: SlowResult): string =>
  `read ${mib(r.readBytes)} MiB at ${fmt(r.readMiBps, 2)} MiB/s; server RSS ${mib(r.serverRssStart)} -> ` +
  `${mib(r.serverRssEnd)} MiB (peak ${mib(r.serverPeakRss)}); produced ahead of the reader ` +
  `${mib(r.aheadStart)} -> ${mib(r.aheadEnd)} MiB`;

/** Runs one measurement; a failure becomes a failed result (printed), never an exception. */
async function attempt<T>(label: string, run: () => Promise<T>, failed: (error: string) => T, describe: (r: T) => string): Promise<T> {
  try {
    const r = await run();
    console.error(`${label} ${describe(r)}`);
    return r;
  } catch (err) {
    const error = errorMessage(err);
    console.error(`${label} FAILED: ${error}`);
    return failed(error);
  }
}

export async function runRssSuite(options: SuiteOptions): Promise<object> {
  const title = 'gridwire memory (RSS, MiB), one loopback TCP connection, separate server and client processes';
  const why = options.systems.includes('gridwire') ? await probeGridwireStreams() : 'gridwire not in --only';
  if (why !== null) return skipSuite('rss', title, why);
  const runs = options.runs ?? DEFAULT_RUNS;
  const common = { pin: options.pin, nodeArgs: ['--expose-gc'], compiledWorker: compileScenarioWorker() };
  const idleSpec: ScenarioRunSpec = { ...IDLE_TIMING, ...common, waitArmed: true };
  const slowSpec: ScenarioRunSpec = { ...SLOW_TIMING, ...common };

  const idle: IdleResult[] = [];
  const slow: SlowResult[] = [];
  for (let run = 1; run <= runs; run++) {
    idle.push(await attempt(
      `[rss ${run}/${runs}] ${IDLE_STREAMS} idle streams`,
      async () => idleResult(run, await runScenario('gridwire', 'idle-streams', idleSpec)),
      (error) => ({ run, ok: false, error, openMs: NaN, server: NO_MEMORY, client: NO_MEMORY }),
      describeIdle,
    ));
    slow.push(await attempt(
      `[rss ${run}/${runs}] slow read          `,
      async () => slowResult(run, await runScenario('gridwire', 'slow-read', slowSpec)),
      (error) => ({
        run, ok: false, error, readBytes: NaN, readMiBps: NaN, serverReadyRss: NaN, serverRssStart: NaN,
        serverRssEnd: NaN, serverPeakRss: NaN, aheadStart: NaN, aheadEnd: NaN,
      }),
      describeSlow,
    ));
  }

  const buffers = socketBufferMax();
  const aheadBound = buffers === null ? NaN : BULK_WINDOW + buffers.send + buffers.receive;
  const checks = computeChecks(idle, slow, aheadBound);
  const { warmupMs, windowMs } = SLOW_TIMING;

  console.log(`\n${title}, ${runs} run(s)`);
  for (const n of options.notes) console.log(`note: ${n}`);
  console.log('note: workers run as plain JS compiled by tsc (bench/tsconfig.compiled.json), with --expose-gc');
  const after = (IDLE_TIMING.warmupMs + IDLE_TIMING.windowMs) / 1000;
  console.log(`\n${IDLE_STREAMS} idle serverStream calls open on one connection (maxConcurrentStreams 20000 on both sides),`);
  console.log(`${after} s after the last one opened; RSS still holds heap V8 grew for the opening burst (see heap total):\n`);
  console.log(formatIdle(idle));
  const pace = `${SLOW_READ_BYTES_PER_SEC / MiB} MiB/s`;
  console.log(`\na 1 GiB download read at ${pace}, ${warmupMs / 1000} s warmup then a ${windowMs / 1000} s window:\n`);
  console.log(formatSlow(slow));
  console.log(`\nbound on bytes produced ahead of the reader: ${describeBound(buffers, aheadBound)}`);
  console.log('\nchecks (median over runs):');
  console.log(formatChecks(checks));
  const config = { runs, idleStreams: IDLE_STREAMS, idleTiming: IDLE_TIMING, slowTiming: SLOW_TIMING, pinned: options.pin };
  return { bench: 'rss', checks, idleStreams: idle, slowRead: slow, config: { ...config, socketBuffers: buffers } };
}

/** The kernel's largest TCP send and receive buffers (third field of tcp_wmem / tcp_rmem), or null off Linux. */
function socketBufferMax(): { send: number; receive: number } | null {
  const max = (file: string): number => Number(readFileSync(`/proc/sys/net/ipv4/${file}`, 'utf8').trim().split(/\s+/)[2]);
  try {
    const limits = { send: max('tcp_wmem'), receive: max('tcp_rmem') };
    return Number.isFinite(limits.send) && Number.isFinite(limits.receive) ? limits : null;
  } catch {
    return null;
  }
}

function describeBound(buffers: { send: number; receive: number } | null, bound: number): string {
  if (buffers === null) return 'socket buffer limits unknown (no /proc/sys/net/ipv4)';
  return `bulk window ${mib(BULK_WINDOW)} + tcp_wmem max ${mib(buffers.send)} + tcp_rmem max ${mib(buffers.receive)} = ${mib(bound)} MiB`;
}

// ---- checks: a figure (median over runs) that must stay at or under its target ----

interface Check {
  mib: number;
  targetMiB: number;
  met: boolean | null;
}

function check(values: number[], target: number): Check {
  const value = median(values);
  const met = Number.isFinite(value) && Number.isFinite(target) ? value <= target : null;
  return { mib: value / MiB, targetMiB: target / MiB, met };
}

function computeChecks(idle: IdleResult[], slow: SlowResult[], aheadBound: number): Record<string, Check> {
  const okIdle = idle.filter((r) => r.ok);
  const okSlow = slow.filter((r) => r.ok);
  return {
    idle_streams_server_rss: check(okIdle.map((r) => r.server.rss), IDLE_RSS_TARGET),
    idle_streams_client_rss: check(okIdle.map((r) => r.client.rss), IDLE_RSS_TARGET),
    slow_read_server_rss_growth: check(okSlow.map((r) => r.serverRssEnd - r.serverRssStart), SLOW_GROWTH_SLACK),
    slow_read_produced_ahead: check(okSlow.map((r) => Math.max(r.aheadStart, r.aheadEnd)), aheadBound),
  };
}

function formatChecks(checks: Record<string, Check>): string {
  const width = Math.max(...Object.keys(checks).map((k) => k.length));
  return Object.entries(checks)
    .map(([key, c]) => {
      const state = c.met === null ? '' : c.met ? '  MET' : '  NOT MET';
      return `  ${key.padEnd(width)} ${fmt(c.mib, 1).padStart(8)} MiB  target <= ${fmt(c.targetMiB, 1)} MiB${state}`;
    })
    .join('\n');
}

// ---- tables (medians over runs) ----

function formatIdle(results: IdleResult[]): string {
  const ok = results.filter((r) => r.ok);
  const perStreamKiB = (bytes: number): string => fmt(bytes / IDLE_STREAMS / 1024, 2);
  const row = (side: 'server' | 'client'): string[] => {
    const m = (pick: (f: IdleMemory) => number): number => median(ok.map((r) => pick(r[side])));
    return [
      side, mib(m((f) => f.readyRss)), mib(m((f) => f.rss)), mib(m((f) => f.peakRss)), mib(m((f) => f.heapTotal)),
      `${mib(m((f) => f.readyHeapUsed))} -> ${mib(m((f) => f.heapUsed))}`, mib(m((f) => f.external)),
      perStreamKiB(m((f) => f.rss - f.readyRss)), perStreamKiB(m((f) => f.heapUsed - f.readyHeapUsed)),
      fmt(median(ok.map((r) => r.openMs))), `${ok.length}/${results.length}`,
    ];
  };
  const head = [
    'process', 'RSS ready', 'RSS open', 'RSS peak', 'heap total', 'heap used ready -> open', 'external',
    'RSS KiB/stream', 'heap KiB/stream', 'open ms', 'runs ok',
  ];
  return markdownTable(head, [row('server'), row('client')], 1);
}

function formatSlow(results: SlowResult[]): string {
  const ok = results.filter((r) => r.ok);
  const m = (pick: (r: SlowResult) => number): number => median(ok.map(pick));
  const head = [
    'read in window', 'read MiB/s', 'server RSS ready', 'window start', 'window end', 'peak', 'ahead start',
    'ahead end', 'runs ok',
  ];
  const body = [[
    mib(m((r) => r.readBytes)), fmt(m((r) => r.readMiBps), 2), mib(m((r) => r.serverReadyRss)),
    mib(m((r) => r.serverRssStart)), mib(m((r) => r.serverRssEnd)), mib(m((r) => r.serverPeakRss)),
    mib(m((r) => r.aheadStart)), mib(m((r) => r.aheadEnd)), `${ok.length}/${results.length}`,
  ]];
  return markdownTable(head, body, 0);
}
