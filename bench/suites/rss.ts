// Suite `rss` (issue 3, figures 3 and 4): gridwire's memory, in resident set size of separate server and client
// processes running the scenario worker compiled to plain JS (compiled.ts: tsx's loader would add ~34 MiB each),
// started with --expose-gc so the marks show retained memory (the worker collects before each snapshot) while the
// sampled peak shows what the process really reached in between.
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
import { errorMessage, probeGridwireStreams, runScenario, type ScenarioRunSpec, type SuiteOptions } from './suite.js';

const DEFAULT_RUNS = 1;
const NODE_ARGS = ['--expose-gc'];
/** The idle streams are all open (`armed`) before the warmup; then there is nothing to wait for. */
const IDLE_TIMING = { warmupMs: 500, windowMs: 1000 };
/** Long enough for the pipeline to fill at 1 MiB/s, then 5 MiB read inside the window. */
const SLOW_TIMING = { warmupMs: 2000, windowMs: 5000 };

const IDLE_RSS_TARGET = 100 * MiB;
/** gridwire's default receive window for bulk streams (README "Options and limits"; measured with defaults). */
const BULK_WINDOW = 1 * MiB;
/** Retained RSS may wander this much over the slow-read window (allocator and heap noise), not with the bytes read. */
const SLOW_GROWTH_SLACK = 2 * MiB;

interface IdleResult {
  run: number;
  ok: boolean;
  error?: string;
  openMs: number;
  server: MemoryFigures;
  client: MemoryFigures;
}

interface MemoryFigures {
  readyRss: number;
  readyHeapUsed: number;
  /** After GC, all streams open (end of the window). */
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  peakRss: number;
}

interface SlowResult {
  run: number;
  ok: boolean;
  error?: string;
  /** Bytes the client read inside the window, and at what rate. */
  readBytes: number;
  readMiBps: number;
  serverReadyRss: number;
  /** Server RSS after GC at the start and at the end of the window, and the sampled peak in between. */
  serverRssStart: number;
  serverRssEnd: number;
  serverPeakRss: number;
  /** Bytes the server's handler had produced beyond what the client had read, at each mark. */
  aheadStart: number;
  aheadEnd: number;
}

function memory(r: ScenarioReport): MemoryFigures {
  const end = r.marks[1];
  return {
    readyRss: r.ready.rss, readyHeapUsed: r.ready.heapUsed,
    rss: end.rss, heapTotal: end.heapTotal, heapUsed: end.heapUsed, external: end.external, peakRss: r.peakRss,
  };
}

function idleResult(run: number, client: ScenarioReport, server: ScenarioReport): IdleResult {
  const open = client.facts.idleStreamsOpen ?? 0;
  const atServer = server.facts.idleStreamsPeak ?? 0;
  if (open !== IDLE_STREAMS || atServer !== IDLE_STREAMS) {
    throw new Error(`expected ${IDLE_STREAMS} open streams, client has ${open}, server handlers ran ${atServer}`);
  }
  return { run, ok: true, openMs: client.facts.openMs ?? NaN, server: memory(server), client: memory(client) };
}

function slowResult(run: number, client: ScenarioReport, server: ScenarioReport): SlowResult {
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

async function measure<T extends { ok: boolean; error?: string }>(
  label: string,
  run: () => Promise<T>,
  failed: (error: string) => T,
  describe: (r: T) => string,
): Promise<T> {
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

const mib = (bytes: number, digits = 1): string => fmt(bytes / MiB, digits);

export async function runRssSuite(options: SuiteOptions): Promise<object> {
  const title = 'gridwire memory (RSS, MiB), one loopback TCP connection, separate server and client processes';
  const why = options.systems.includes('gridwire') ? await probeGridwireStreams() : 'gridwire not in --only';
  if (why !== null) {
    console.error(`bench: rss suite SKIPPED: ${why}`);
    console.log(`\n${title}\nnote: SKIPPED: ${why}`);
    return { bench: 'rss', skipped: why };
  }
  const runs = options.runs ?? DEFAULT_RUNS;
  const compiledWorker = compileScenarioWorker();
  const common = { pin: options.pin, nodeArgs: NODE_ARGS, compiledWorker } satisfies Partial<ScenarioRunSpec>;
  const idle: IdleResult[] = [];
  const slow: SlowResult[] = [];
  for (let run = 1; run <= runs; run++) {
    idle.push(
      await measure(
        `[rss ${run}/${runs}] ${IDLE_STREAMS} idle streams`,
        async () => {
          const { client, server } = await runScenario('gridwire', 'idle-streams', { ...IDLE_TIMING, ...common, waitArmed: true });
          return idleResult(run, client, server);
        },
        (error) => ({ run, ok: false, error, openMs: NaN, server: NO_MEMORY, client: NO_MEMORY }),
        (r) => `opened in ${fmt(r.openMs)} ms; RSS server ${mib(r.server.rss)} MiB (ready ${mib(r.server.readyRss)}), client ${mib(r.client.rss)} MiB (ready ${mib(r.client.readyRss)})`,
      ),
    );
    slow.push(
      await measure(
        `[rss ${run}/${runs}] slow read          `,
        async () => {
          const { client, server } = await runScenario('gridwire', 'slow-read', { ...SLOW_TIMING, ...common });
          return slowResult(run, client, server);
        },
        (error) => ({
          run, ok: false, error, readBytes: NaN, readMiBps: NaN, serverReadyRss: NaN, serverRssStart: NaN, serverRssEnd: NaN,
          serverPeakRss: NaN, aheadStart: NaN, aheadEnd: NaN,
        }),
        (r) => `read ${mib(r.readBytes)} MiB at ${fmt(r.readMiBps, 2)} MiB/s; server RSS ${mib(r.serverRssStart)} -> ${mib(r.serverRssEnd)} MiB ` +
          `(peak ${mib(r.serverPeakRss)}); produced ahead of the reader ${mib(r.aheadStart)} -> ${mib(r.aheadEnd)} MiB`,
      ),
    );
  }

  const buffers = socketBufferMax();
  const aheadBound = buffers === null ? NaN : BULK_WINDOW + buffers.send + buffers.receive;
  const checks = computeChecks(idle, slow, aheadBound);

  console.log(`\n${title}, ${runs} run(s)`);
  for (const n of options.notes) console.log(`note: ${n}`);
  console.log('note: workers run as plain JS compiled by tsc (bench/tsconfig.compiled.json), with --expose-gc');
  console.log(`\n${IDLE_STREAMS} idle serverStream calls open on one connection (maxConcurrentStreams 20000 on both sides), medians:\n`);
  console.log(formatIdle(idle));
  console.log(`\na 1 GiB download read at ${SLOW_READ_BYTES_PER_SEC / MiB} MiB/s, ${SLOW_TIMING.warmupMs / 1000} s warmup then a ${SLOW_TIMING.windowMs / 1000} s window, medians:\n`);
  console.log(formatSlow(slow));
  const bound = buffers === null
    ? 'socket buffer limits unknown (no /proc/sys/net/ipv4)'
    : `bulk window ${mib(BULK_WINDOW)} + tcp_wmem max ${mib(buffers.send)} + tcp_rmem max ${mib(buffers.receive)} = ${mib(aheadBound)} MiB`;
  console.log(`\nbound on bytes produced ahead of the reader: ${bound}`);
  console.log('\nchecks (median over runs):');
  console.log(formatVerdicts(checks));
  return {
    bench: 'rss', checks, idleStreams: idle, slowRead: slow,
    config: { runs, idleStreams: IDLE_STREAMS, idleTiming: IDLE_TIMING, slowTiming: SLOW_TIMING, socketBuffers: buffers, pinned: options.pin },
  };
}

const NO_MEMORY: MemoryFigures = {
  readyRss: NaN, readyHeapUsed: NaN, rss: NaN, heapTotal: NaN, heapUsed: NaN, external: NaN, peakRss: NaN,
};

interface Verdict {
  value: number;
  target: number;
  unit: 'MiB';
  met: boolean | null;
}

function verdict(values: number[], target: number): Verdict {
  const value = median(values);
  return { value: value / MiB, target: target / MiB, unit: 'MiB', met: Number.isFinite(value) && Number.isFinite(target) ? value <= target : null };
}

function computeChecks(idle: IdleResult[], slow: SlowResult[], aheadBound: number): Record<string, Verdict> {
  const okIdle = idle.filter((r) => r.ok);
  const okSlow = slow.filter((r) => r.ok);
  return {
    idle_streams_server_rss: verdict(okIdle.map((r) => r.server.rss), IDLE_RSS_TARGET),
    idle_streams_client_rss: verdict(okIdle.map((r) => r.client.rss), IDLE_RSS_TARGET),
    slow_read_server_rss_growth: verdict(okSlow.map((r) => r.serverRssEnd - r.serverRssStart), SLOW_GROWTH_SLACK),
    slow_read_produced_ahead: verdict(okSlow.map((r) => Math.max(r.aheadStart, r.aheadEnd)), aheadBound),
  };
}

function formatIdle(results: IdleResult[]): string {
  const ok = results.filter((r) => r.ok);
  const med = (pick: (r: IdleResult) => number): number => median(ok.map(pick));
  const perStreamKiB = (bytes: number): string => fmt(bytes / IDLE_STREAMS / 1024, 2);
  const row = (side: 'server' | 'client'): string[] => {
    const m = (pick: (f: MemoryFigures) => number): number => med((r) => pick(r[side]));
    return [
      side, mib(m((f) => f.readyRss)), mib(m((f) => f.rss)), mib(m((f) => f.peakRss)), mib(m((f) => f.heapTotal)),
      `${mib(m((f) => f.readyHeapUsed))} -> ${mib(m((f) => f.heapUsed))}`, mib(m((f) => f.external)),
      perStreamKiB(m((f) => f.rss - f.readyRss)), perStreamKiB(m((f) => f.heapUsed - f.readyHeapUsed)),
      fmt(med((r) => r.openMs)), `${ok.length}/${results.length}`,
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
  const med = (pick: (r: SlowResult) => number): number => median(ok.map(pick));
  const head = ['read in window', 'read MiB/s', 'server RSS ready', 'window start', 'window end', 'peak', 'ahead start', 'ahead end', 'runs ok'];
  const body = [[
    mib(med((r) => r.readBytes)), fmt(med((r) => r.readMiBps), 2), mib(med((r) => r.serverReadyRss)),
    mib(med((r) => r.serverRssStart)), mib(med((r) => r.serverRssEnd)), mib(med((r) => r.serverPeakRss)),
    mib(med((r) => r.aheadStart)), mib(med((r) => r.aheadEnd)), `${ok.length}/${results.length}`,
  ]];
  return markdownTable(head, body, 0);
}

function formatVerdicts(checks: Record<string, Verdict>): string {
  const width = Math.max(...Object.keys(checks).map((k) => k.length));
  return Object.entries(checks)
    .map(([key, v]) => {
      const state = v.met === null ? '' : v.met ? '  MET' : '  NOT MET';
      return `  ${key.padEnd(width)} ${fmt(v.value, 1).padStart(8)} MiB  target <= ${fmt(v.target, 1)} MiB${state}`;
    })
    .join('\n');
}
