// Suite `stream-rss`: gridwire's memory per stream, in resident set size of separate server and client processes
// running the worker compiled to plain JS (processes.ts compiledLaunch: tsx's loader would add ~34 MiB each), started
// with --expose-gc so the marks show retained memory (the worker collects before each snapshot) while the sampled peak
// shows what the process really reached on the way. With --against, gridwire@base runs both too.
//   idle-streams  IDLE_STREAMS serverStream calls opened on one connection and left idle: RSS with all of them open.
//                 Each handler waits for its ctx.signal, an AbortSignal of ~0.9 KiB (with its listener) on Node 20.
//   idle-bidi     the same with bidi calls, whose handler waits on its request iterator: an idle stream whose handler
//                 needs no signal to learn of a cancel.
//   slow-read     a 1 GiB download read at 1 MiB/s: the server's RSS must not grow with the amount read, and what its
//                 handler produced ahead of the reader must stay within the windows plus the socket buffers.
import { readFileSync } from 'node:fs';
import type { SideReport } from '../messages.js';
import { compiledLaunch, type PairReports } from '../processes.js';
import { check, fmt, formatChecks, markdownTable, type Check } from '../report.js';
import { median } from '../stats.js';
import { IDLE_LIMITS, IDLE_STREAMS, SLOW_READ_BYTES_PER_SEC } from '../systems/gridwire.js';
import type { SystemName } from '../systems/index.js';
import { MiB } from '../systems/scenario.js';
import {
  attempt, checkPrefix, describeAgainst, roundRobin, runScenario, sameRunRatios, skipSuite, succeeded, suiteSystems,
  type Result, type SuiteOptions,
} from './common.js';

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
/** Issue 12: the server's RSS with the streams open, and what each adds to it (RSS open - RSS ready, per stream). */
const IDLE_SERVER_RSS_TARGET = 80 * MiB;
const IDLE_SERVER_RSS_PER_STREAM_TARGET = 2.5 * 1024;
/** gridwire's default receive window for bulk streams (README "Options and limits"; measured with defaults). */
const BULK_WINDOW = 1 * MiB;
/** Retained RSS may wander this much over the slow-read window (allocator and heap noise), not with the bytes read. */
const SLOW_GROWTH_SLACK = 2 * MiB;

interface Key {
  system: SystemName;
  run: number;
}

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

interface IdleFigures {
  openMs: number;
  server: IdleMemory;
  client: IdleMemory;
}

interface SlowFigures {
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

function idleMemory(r: SideReport): IdleMemory {
  const end = r.marks[1];
  return {
    readyRss: r.ready.rss, readyHeapUsed: r.ready.heapUsed,
    rss: end.rss, heapTotal: end.heapTotal, heapUsed: end.heapUsed, external: end.external, peakRss: r.peakRss,
  };
}

function idleFigures({ client, server }: PairReports): IdleFigures {
  const open = client.facts.idleStreamsOpen ?? 0;
  const atServer = server.facts.idleStreamsPeak ?? 0;
  if (open !== IDLE_STREAMS || atServer !== IDLE_STREAMS) {
    throw new Error(`expected ${IDLE_STREAMS} open streams, client has ${open}, server handlers ran ${atServer}`);
  }
  return { openMs: client.facts.openMs ?? NaN, server: idleMemory(server), client: idleMemory(client) };
}

function slowFigures({ client, server }: PairReports): SlowFigures {
  const readBytes = client.marks[1].receivedBytes - client.marks[0].receivedBytes;
  return {
    readBytes,
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

const describeIdle = (r: IdleFigures): string =>
  `opened in ${fmt(r.openMs)} ms; RSS server ${mib(r.server.rss)} MiB (ready ${mib(r.server.readyRss)}), ` +
  `client ${mib(r.client.rss)} MiB (ready ${mib(r.client.readyRss)})`;

const describeSlow = (r: SlowFigures): string =>
  `read ${mib(r.readBytes)} MiB at ${fmt(r.readMiBps, 2)} MiB/s; server RSS ${mib(r.serverRssStart)} -> ` +
  `${mib(r.serverRssEnd)} MiB (peak ${mib(r.serverPeakRss)}); produced ahead of the reader ` +
  `${mib(r.aheadStart)} -> ${mib(r.aheadEnd)} MiB`;

export async function runStreamRssSuite(options: SuiteOptions): Promise<object> {
  const title = 'gridwire memory (RSS, MiB), one loopback TCP connection, separate server and client processes';
  const { systems, notes: skipped } = await suiteSystems(options, ['gridwire', 'gridwire@base']);
  if (!systems.includes('gridwire')) return skipSuite('stream-rss', title, skipped[0] ?? 'gridwire not in --only');
  const runs = options.runs ?? DEFAULT_RUNS;
  const launch = compiledLaunch(options.against);
  const common = { pin: options.pin, nodeArgs: ['--expose-gc'], samplePeakRss: true };

  const idle: Result<Key, IdleFigures>[] = [];
  const idleBidi: Result<Key, IdleFigures>[] = [];
  const slow: Result<Key, SlowFigures>[] = [];
  for (let run = 1; run <= runs; run++) {
    for (const system of roundRobin(systems, run)) {
      const label = `[stream-rss ${run}/${runs}] ${system.padEnd(13)}`;
      const idleRun = { ...IDLE_TIMING, ...common, waitArmed: true };
      idle.push(await attempt(`${label} ${IDLE_STREAMS} idle streams`, { system, run },
        async () => idleFigures(await runScenario(launch, system, 'idle-streams', idleRun)), describeIdle));
      idleBidi.push(await attempt(`${label} ${IDLE_STREAMS} idle bidi  `, { system, run },
        async () => idleFigures(await runScenario(launch, system, 'idle-bidi', idleRun)), describeIdle));
      slow.push(await attempt(`${label} slow read          `, { system, run },
        async () => slowFigures(await runScenario(launch, system, 'slow-read', { ...SLOW_TIMING, ...common })), describeSlow));
    }
  }

  const buffers = socketBufferMax();
  const aheadBound = buffers === null ? NaN : BULK_WINDOW + buffers.send + buffers.receive;
  const checks: Record<string, Check> = {};
  for (const system of systems) {
    const prefix = checkPrefix(system);
    const okIdle = succeeded(idle).filter((r) => r.system === system);
    const okBidi = succeeded(idleBidi).filter((r) => r.system === system);
    const okSlow = succeeded(slow).filter((r) => r.system === system);
    const atMost = (values: number[], target: number): Check => check(values.map((v) => v / MiB), 'MiB', { sense: '<=', value: target / MiB });
    checks[`${prefix}idle_streams_server_rss`] = atMost(okIdle.map((r) => r.server.rss), IDLE_SERVER_RSS_TARGET);
    const perStream = (ok: IdleFigures[], pick: (r: IdleFigures) => number): number[] => ok.map((r) => pick(r) / IDLE_STREAMS / 1024);
    const rssTarget = { sense: '<=', value: IDLE_SERVER_RSS_PER_STREAM_TARGET / 1024 } as const;
    for (const [kind, ok] of [['streams', okIdle], ['bidi', okBidi]] as const) {
      if (kind === 'bidi') checks[`${prefix}idle_bidi_server_rss`] = atMost(ok.map((r) => r.server.rss), IDLE_SERVER_RSS_TARGET);
      checks[`${prefix}idle_${kind}_server_rss_per_stream`] = check(perStream(ok, (r) => r.server.rss - r.server.readyRss), 'KiB', rssTarget);
      // the heap each stream holds: steadier than RSS on a shared machine (the handler's own generator and signal included)
      checks[`${prefix}idle_${kind}_server_heap_per_stream`] = check(perStream(ok, (r) => r.server.heapUsed - r.server.readyHeapUsed), 'KiB');
      checks[`${prefix}idle_${kind}_client_heap_per_stream`] = check(perStream(ok, (r) => r.client.heapUsed - r.client.readyHeapUsed), 'KiB');
    }
    checks[`${prefix}idle_streams_client_rss`] = atMost(okIdle.map((r) => r.client.rss), IDLE_RSS_TARGET);
    checks[`${prefix}slow_read_server_rss_growth`] = atMost(okSlow.map((r) => r.serverRssEnd - r.serverRssStart), SLOW_GROWTH_SLACK);
    checks[`${prefix}slow_read_produced_ahead`] = atMost(okSlow.map((r) => Math.max(r.aheadStart, r.aheadEnd)), aheadBound);
  }
  if (systems.includes('gridwire@base')) {
    for (const side of ['server', 'client'] as const) {
      const ratios = sameRunRatios(idle, runs, { system: 'gridwire' }, { system: 'gridwire@base' }, (r) => r[side].rss);
      checks[`idle_streams_${side}_rss_gridwire_vs_base`] = check(ratios, 'x');
    }
    const bidiRatios = sameRunRatios(idleBidi, runs, { system: 'gridwire' }, { system: 'gridwire@base' }, (r) => r.server.rss);
    checks.idle_bidi_server_rss_gridwire_vs_base = check(bidiRatios, 'x');
  }
  const { warmupMs, windowMs } = SLOW_TIMING;

  console.log(`\n${title}, ${runs} run(s)`);
  for (const n of [...skipped, ...options.notes, ...describeAgainst(options)]) console.log(`note: ${n}`);
  console.log('note: workers run as plain JS compiled by tsc (into node_modules/.cache/gridwire-bench), with --expose-gc');
  const after = (IDLE_TIMING.warmupMs + IDLE_TIMING.windowMs) / 1000;
  const limit = IDLE_LIMITS.maxConcurrentStreams ?? NaN;
  console.log(`\n${IDLE_STREAMS} idle serverStream calls open on one connection (maxConcurrentStreams ${limit} on both sides),`);
  console.log(`${after} s after the last one opened; RSS still holds heap V8 grew for the opening burst (see heap total):\n`);
  console.log(formatIdle(idle, systems));
  console.log(`\nthe same with ${IDLE_STREAMS} idle bidi calls (each handler waits on its request iterator, reads no signal):\n`);
  console.log(formatIdle(idleBidi, systems));
  const pace = `${SLOW_READ_BYTES_PER_SEC / MiB} MiB/s`;
  console.log(`\na 1 GiB download read at ${pace}, ${warmupMs / 1000} s warmup then a ${windowMs / 1000} s window:\n`);
  console.log(formatSlow(slow, systems));
  console.log(`\nbound on bytes produced ahead of the reader: ${describeBound(buffers, aheadBound)}`);
  console.log('\nchecks (median over runs):');
  console.log(formatChecks(checks));
  const config = { runs, idleStreams: IDLE_STREAMS, idleTiming: IDLE_TIMING, slowTiming: SLOW_TIMING, pinned: options.pin, against: options.against };
  return { bench: 'stream-rss', checks, idleStreams: idle, idleBidi, slowRead: slow, config: { ...config, socketBuffers: buffers } };
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

// ---- tables (medians over runs) ----

function formatIdle(results: Result<Key, IdleFigures>[], systems: SystemName[]): string {
  const perStreamKiB = (bytes: number): string => fmt(bytes / IDLE_STREAMS / 1024, 2);
  const row = (system: SystemName, side: 'server' | 'client'): string[] => {
    const all = results.filter((r) => r.system === system);
    const ok = succeeded(all);
    const m = (pick: (f: IdleMemory) => number): number => median(ok.map((r) => pick(r[side])));
    return [
      system, side, mib(m((f) => f.readyRss)), mib(m((f) => f.rss)), mib(m((f) => f.peakRss)), mib(m((f) => f.heapTotal)),
      `${mib(m((f) => f.readyHeapUsed))} -> ${mib(m((f) => f.heapUsed))}`, mib(m((f) => f.external)),
      perStreamKiB(m((f) => f.rss - f.readyRss)), perStreamKiB(m((f) => f.heapUsed - f.readyHeapUsed)),
      fmt(median(ok.map((r) => r.openMs))), `${ok.length}/${all.length}`,
    ];
  };
  const head = [
    'system', 'process', 'RSS ready', 'RSS open', 'RSS peak', 'heap total', 'heap used ready -> open', 'external',
    'RSS KiB/stream', 'heap KiB/stream', 'open ms', 'runs ok',
  ];
  return markdownTable(head, systems.flatMap((s) => [row(s, 'server'), row(s, 'client')]), 2);
}

function formatSlow(results: Result<Key, SlowFigures>[], systems: SystemName[]): string {
  const head = [
    'system', 'read in window', 'read MiB/s', 'server RSS ready', 'window start', 'window end', 'peak', 'ahead start',
    'ahead end', 'runs ok',
  ];
  const body = systems.map((system) => {
    const all = results.filter((r) => r.system === system);
    const ok = succeeded(all);
    const m = (pick: (r: SlowFigures) => number): number => median(ok.map(pick));
    return [
      system, mib(m((r) => r.readBytes)), fmt(m((r) => r.readMiBps), 2), mib(m((r) => r.serverReadyRss)),
      mib(m((r) => r.serverRssStart)), mib(m((r) => r.serverRssEnd)), mib(m((r) => r.serverPeakRss)),
      mib(m((r) => r.aheadStart)), mib(m((r) => r.aheadEnd)), `${ok.length}/${all.length}`,
    ];
  });
  return markdownTable(head, body, 1);
}
