// Suite `unary`: calls/s, p50/p99 latency and CPU per call of an echo over loopback TCP, raw node:net, ws, grpc-js,
// yamux (a new stream per call), capnweb (over ws) and gridwire (and gridwire@base with --against), at each
// --concurrency (default 1 and 64: c=1 gives the latency, c=64 the throughput; raw at c=64 is raw pipelined) and each
// --payload (bytes: 32 bytes, gridwire's raw codec; object: { data: 32 bytes } through gridwire's msgpack codec, 42
// bytes for the others) on one connection. Each run in fresh pinned processes, the systems alternated round-robin
// (A B C D A B C D), and gridwire compared with the others within the SAME run. Warmup: each client makes
// ECHO_WARMUP_CALLS calls (at most ECHO_WARMUP_MAX_MS), then WARMUP_MS more.
import { pairLaunch, type PairReports } from '../processes.js';
import { check, fmt, formatChecks, markdownTable, type Check } from '../report.js';
import { median } from '../stats.js';
import type { SystemName } from '../systems/index.js';
import { echoBytesOf, type EchoPayload } from '../systems/scenario.js';
import {
  attempt, describeAgainst, figureOf, perRun, roundRobin, runScenario, sameRunRatios, suiteSystems, succeeded, type Result,
  type SuiteOptions,
} from './common.js';

const WARMUP_MS = 1000;
const DEFAULT_SECONDS = 3;
const DEFAULT_RUNS = 2;

interface Key {
  system: SystemName;
  concurrency: number;
  payload: EchoPayload;
  run: number;
}

interface Figures {
  count: number;
  windowMs: number;
  callsPerSec: number;
  p50Us: number;
  p99Us: number;
  /** % of one core (user + system) over the window. */
  cpuClientPct: number;
  cpuServerPct: number;
  clientUserPct: number;
  clientSysPct: number;
  serverUserPct: number;
  serverSysPct: number;
  /** CPU time per completed call, µs. */
  clientCpuUsPerCall: number;
  serverCpuUsPerCall: number;
}

function figures({ client: c, server: s }: PairReports): Figures {
  const pct = (us: number, ms: number): number => us / (ms * 10);
  const { count, p50Us, p99Us } = c.latency;
  if (count === 0) throw new Error('no call completed inside the window');
  return {
    count,
    windowMs: c.elapsedMs,
    callsPerSec: (count * 1000) / c.elapsedMs,
    p50Us,
    p99Us,
    cpuClientPct: pct(c.cpu.userUs + c.cpu.systemUs, c.elapsedMs),
    cpuServerPct: pct(s.cpu.userUs + s.cpu.systemUs, s.elapsedMs),
    clientUserPct: pct(c.cpu.userUs, c.elapsedMs),
    clientSysPct: pct(c.cpu.systemUs, c.elapsedMs),
    serverUserPct: pct(s.cpu.userUs, s.elapsedMs),
    serverSysPct: pct(s.cpu.systemUs, s.elapsedMs),
    clientCpuUsPerCall: (c.cpu.userUs + c.cpu.systemUs) / count,
    serverCpuUsPerCall: ((s.cpu.userUs + s.cpu.systemUs) * (c.elapsedMs / s.elapsedMs)) / count,
  };
}

const describe = (r: Figures): string =>
  `${r.callsPerSec.toFixed(0).padStart(7)} calls/s  p50 ${r.p50Us.toFixed(0)} µs  p99 ${r.p99Us.toFixed(0)} µs  ` +
  `CPU ${r.cpuClientPct.toFixed(0)}/${r.cpuServerPct.toFixed(0)}%`;

/**
 * calls/s ratios within the same run, with the targets the issues set (each shown when both its rows run); against
 * gridwire@base without a target. Both rows carry `payload`.
 */
interface RatioDef {
  key: string;
  payload: EchoPayload;
  num: [SystemName, number];
  den: [SystemName, number];
  target: Check['target'];
}
const TARGETS: readonly RatioDef[] = [
  { key: 'gridwire_c1_vs_raw_c1', payload: 'bytes', num: ['gridwire', 1], den: ['raw', 1], target: { sense: '>=', value: 0.8 } },
  { key: 'gridwire_c64_vs_ws_c64', payload: 'bytes', num: ['gridwire', 64], den: ['ws', 64], target: { sense: '>=', value: 2 } },
  { key: 'gridwire_c64_vs_grpc_c64', payload: 'bytes', num: ['gridwire', 64], den: ['grpc', 64], target: { sense: '>=', value: 25 } },
  // issue 12's peers: yamux with a new stream per call (keep >= 10x), capnweb over ws (shown without a target)
  { key: 'gridwire_c1_vs_yamux_c1', payload: 'bytes', num: ['gridwire', 1], den: ['yamux', 1], target: null },
  { key: 'gridwire_c64_vs_yamux_c64', payload: 'bytes', num: ['gridwire', 64], den: ['yamux', 64], target: { sense: '>=', value: 10 } },
  { key: 'gridwire_c1_vs_capnweb_c1', payload: 'bytes', num: ['gridwire', 1], den: ['capnweb', 1], target: null },
  { key: 'gridwire_c64_vs_capnweb_c64', payload: 'bytes', num: ['gridwire', 64], den: ['capnweb', 64], target: null },
  // issue 12: a small msgpack object against the same number of bytes on a raw socket, ping-pong and pipelined
  { key: 'object_gridwire_c1_vs_raw_c1', payload: 'object', num: ['gridwire', 1], den: ['raw', 1], target: { sense: '>=', value: 0.85 } },
  { key: 'object_gridwire_c64_vs_ws_c64', payload: 'object', num: ['gridwire', 64], den: ['ws', 64], target: { sense: '>=', value: 2 } },
  { key: 'object_gridwire_c64_vs_raw_c64', payload: 'object', num: ['gridwire', 64], den: ['raw', 64], target: { sense: '>=', value: 0.4 } },
];
/** Issue 12: client CPU per call with the object payload at most this many µs above the raw codec's (c=1, same run). */
const OBJECT_CPU_OVER_BYTES_US = 2;

export async function runUnarySuite(options: SuiteOptions): Promise<object> {
  const { systems, notes: skipped } = await suiteSystems(options, ['raw', 'ws', 'grpc', 'yamux', 'capnweb', 'gridwire', 'gridwire@base']);
  const notes = [...skipped, ...options.notes, ...describeAgainst(options)];
  const seconds = options.seconds ?? DEFAULT_SECONDS;
  const runs = options.runs ?? DEFAULT_RUNS;
  const concurrencies = [...options.concurrencies];
  const payloads = [...options.payloads];
  const launch = pairLaunch(options.against);

  const results: Result<Key, Figures>[] = [];
  for (let run = 1; run <= runs; run++) {
    for (const payload of payloads) {
      for (const concurrency of concurrencies) {
        for (const system of roundRobin(systems, run)) {
          const label = `[run ${run}/${runs}] ${system.padEnd(13)} ${payload.padEnd(6)} c=${String(concurrency).padEnd(3)}`;
          // armed once each client has made ECHO_WARMUP_CALLS calls (scenario.ts): warm by count, then by time
          const spec = { concurrency, payload, waitArmed: true, warmupMs: WARMUP_MS, windowMs: seconds * 1000, pin: options.pin };
          const measure = async (): Promise<Figures> => figures(await runScenario(launch, system, 'echo', spec));
          results.push(await attempt(label, { system, concurrency, payload, run }, measure, describe));
        }
      }
    }
  }

  const measured = ({ num, den, payload }: RatioDef): boolean =>
    payloads.includes(payload) && [num, den].every(([system, c]) => systems.includes(system) && concurrencies.includes(c));
  const ratios = TARGETS.filter(measured);
  for (const payload of payloads) {
    const prefix = payload === 'bytes' ? '' : `${payload}_`;
    for (const c of concurrencies) {
      if (systems.includes('gridwire@base')) {
        ratios.push({ key: `${prefix}gridwire_c${c}_vs_base_c${c}`, payload, num: ['gridwire', c], den: ['gridwire@base', c], target: null });
      }
    }
  }
  const checks: Record<string, Check> = {};
  for (const { key, payload, num: [system, concurrency], den: [otherSystem, otherConcurrency], target } of ratios) {
    const values = sameRunRatios(results, runs, { system, concurrency, payload }, { system: otherSystem, concurrency: otherConcurrency, payload }, (r) => r.callsPerSec);
    checks[key] = check(values, 'x', target);
  }
  // p50 against raw's at the same payload and concurrency (below 1 would be faster than the socket): no target
  for (const payload of payloads) {
    for (const concurrency of concurrencies) {
      if (!systems.includes('gridwire') || !systems.includes('raw')) continue;
      const values = sameRunRatios(results, runs, { system: 'gridwire', concurrency, payload }, { system: 'raw', concurrency, payload }, (r) => r.p50Us);
      checks[`${payload === 'bytes' ? '' : `${payload}_`}p50_gridwire_c${concurrency}_over_raw_c${concurrency}`] = check(values, 'x');
    }
  }
  if (payloads.includes('object') && payloads.includes('bytes')) {
    for (const system of systems.filter((s) => s === 'gridwire' || s === 'gridwire@base')) {
      const key = `${system === 'gridwire' ? '' : 'base_'}client_cpu_us_per_call_object_minus_bytes_c1`;
      const values = perRun(runs, (run) => {
        const cpu = (payload: EchoPayload): number => figureOf(results, run, { system, concurrency: 1, payload }, (r) => r.clientCpuUsPerCall);
        return cpu('object') - cpu('bytes');
      });
      if (concurrencies.includes(1)) checks[key] = check(values, 'µs', system === 'gridwire' ? { sense: '<=', value: OBJECT_CPU_OVER_BYTES_US } : null);
    }
  }
  const rows = payloads.flatMap((payload) =>
    concurrencies.flatMap((concurrency) => systems.map((system) => summarise(results, system, concurrency, payload))));

  const sizes = payloads.map((p) => (p === 'bytes' ? `bytes (${echoBytesOf(p)} B)` : `object ({ data: 32 B }, ${echoBytesOf(p)} B without a codec)`));
  console.log(`\nunary echo, payload ${sizes.join(' and ')}, loopback TCP, ${runs} run(s) x ${seconds} s window`);
  for (const n of notes) console.log(`note: ${n}`);
  console.log(`\n${formatRows(rows)}\n`);
  console.log('gridwire vs the others, calls/s ratios taken within the same run (median over runs):');
  console.log(formatChecks(checks));
  const config = { seconds, runs, concurrencies, payloads, pinned: options.pin, against: options.against, notes };
  return { bench: 'unary', checks, results: rows, config };
}

interface Row {
  system: SystemName;
  concurrency: number;
  payload: EchoPayload;
  runsOk: number;
  runs: number;
  callsPerSec: number;
  callsPerSecMin: number;
  callsPerSecMax: number;
  p50Us: number;
  p99Us: number;
  cpuClientPct: number;
  cpuServerPct: number;
  clientCpuUsPerCall: number;
  serverCpuUsPerCall: number;
  perRun: Result<Key, Figures>[];
}

/** Medians over the runs of one system at one concurrency that succeeded. */
function summarise(results: Result<Key, Figures>[], system: SystemName, concurrency: number, payload: EchoPayload): Row {
  const perRun = results.filter((r) => r.system === system && r.concurrency === concurrency && r.payload === payload);
  const ok = succeeded(perRun);
  const med = (k: keyof Figures): number => median(ok.map((r) => r[k]));
  const cps = ok.map((r) => r.callsPerSec);
  return {
    system, concurrency, payload, runsOk: ok.length, runs: perRun.length,
    callsPerSec: med('callsPerSec'),
    callsPerSecMin: cps.length ? Math.min(...cps) : NaN,
    callsPerSecMax: cps.length ? Math.max(...cps) : NaN,
    p50Us: med('p50Us'), p99Us: med('p99Us'),
    cpuClientPct: med('cpuClientPct'), cpuServerPct: med('cpuServerPct'),
    clientCpuUsPerCall: med('clientCpuUsPerCall'), serverCpuUsPerCall: med('serverCpuUsPerCall'),
    perRun,
  };
}

function formatRows(rows: Row[]): string {
  const head = ['system', 'payload', 'conc', 'calls/s (median)', 'range', 'p50 µs', 'p99 µs', 'CPU cli/srv %', 'CPU µs/call cli/srv', 'runs ok'];
  const body = rows.map((r) => [
    r.system,
    r.payload,
    String(r.concurrency),
    fmt(r.callsPerSec),
    r.runsOk ? `${fmt(r.callsPerSecMin)}–${fmt(r.callsPerSecMax)}` : '-',
    fmt(r.p50Us),
    fmt(r.p99Us),
    `${fmt(r.cpuClientPct)} / ${fmt(r.cpuServerPct)}`,
    `${fmt(r.clientCpuUsPerCall, 1)} / ${fmt(r.serverCpuUsPerCall, 1)}`,
    `${r.runsOk}/${r.runs}`,
  ]);
  return markdownTable(head, body, 3);
}
