// Turns per-run reports into results: per-run rows, per-(system, concurrency) medians, the same-run ratios with
// their targets, the printed table, and the final JSON line. Pure functions; no processes, no I/O but console.
import type { RunReports } from './harness.js';
import { median } from './stats.js';
import { fmt, markdownTable } from './table.js';
import type { SystemName } from './systems/index.js';

export interface RunResult {
  system: SystemName;
  concurrency: number;
  run: number;
  ok: boolean;
  error?: string;
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

export function toResult(system: SystemName, concurrency: number, run: number, r: RunReports): RunResult {
  const { client: c, server: s } = r;
  const pct = (us: number, ms: number): number => us / (ms * 10);
  return {
    system,
    concurrency,
    run,
    ok: true,
    count: c.count,
    windowMs: c.elapsedMs,
    callsPerSec: (c.count * 1000) / c.elapsedMs,
    p50Us: c.p50Us,
    p99Us: c.p99Us,
    cpuClientPct: pct(c.cpu.userUs + c.cpu.systemUs, c.elapsedMs),
    cpuServerPct: pct(s.cpu.userUs + s.cpu.systemUs, s.elapsedMs),
    clientUserPct: pct(c.cpu.userUs, c.elapsedMs),
    clientSysPct: pct(c.cpu.systemUs, c.elapsedMs),
    serverUserPct: pct(s.cpu.userUs, s.elapsedMs),
    serverSysPct: pct(s.cpu.systemUs, s.elapsedMs),
    clientCpuUsPerCall: (c.cpu.userUs + c.cpu.systemUs) / c.count,
    serverCpuUsPerCall: ((s.cpu.userUs + s.cpu.systemUs) * (c.elapsedMs / s.elapsedMs)) / c.count,
  };
}

export function failedResult(system: SystemName, concurrency: number, run: number, error: string): RunResult {
  return {
    system, concurrency, run, ok: false, error, count: 0, windowMs: 0, callsPerSec: NaN, p50Us: NaN, p99Us: NaN,
    cpuClientPct: NaN, cpuServerPct: NaN, clientUserPct: NaN, clientSysPct: NaN, serverUserPct: NaN,
    serverSysPct: NaN, clientCpuUsPerCall: NaN, serverCpuUsPerCall: NaN,
  };
}

export interface SummaryRow {
  system: SystemName;
  concurrency: number;
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
  perRun: RunResult[];
}

export function summarise(results: RunResult[], systems: SystemName[], concurrencies: number[]): SummaryRow[] {
  const rows: SummaryRow[] = [];
  for (const concurrency of concurrencies) {
    for (const system of systems) {
      const perRun = results.filter((r) => r.system === system && r.concurrency === concurrency);
      const ok = perRun.filter((r) => r.ok);
      const med = (k: keyof RunResult): number => median(ok.map((r) => r[k] as number));
      const cps = ok.map((r) => r.callsPerSec);
      rows.push({
        system, concurrency, runsOk: ok.length, runs: perRun.length,
        callsPerSec: med('callsPerSec'),
        callsPerSecMin: cps.length ? Math.min(...cps) : NaN,
        callsPerSecMax: cps.length ? Math.max(...cps) : NaN,
        p50Us: med('p50Us'), p99Us: med('p99Us'),
        cpuClientPct: med('cpuClientPct'), cpuServerPct: med('cpuServerPct'),
        clientCpuUsPerCall: med('clientCpuUsPerCall'), serverCpuUsPerCall: med('serverCpuUsPerCall'),
        perRun,
      });
    }
  }
  return rows;
}

// ---- same-run ratios ----

interface RatioDef {
  key: string;
  num: [SystemName, number];
  den: [SystemName, number];
  target: number;
}

export const RATIO_DEFS: readonly RatioDef[] = [
  { key: 'gridwire_c1_vs_raw_c1', num: ['gridwire', 1], den: ['raw', 1], target: 0.8 },
  { key: 'gridwire_c64_vs_ws_c64', num: ['gridwire', 64], den: ['ws', 64], target: 1.0 },
  { key: 'gridwire_c64_vs_grpc_c64', num: ['gridwire', 64], den: ['grpc', 64], target: 25 },
];

export interface Ratio {
  /** Median over runs of (num calls/s / den calls/s), both taken from the same run; null when not measured. */
  median: number | null;
  perRun: number[];
  target: number;
  met: boolean | null;
}

export function computeRatios(results: RunResult[], runs: number): Record<string, Ratio> {
  const find = (run: number, [system, concurrency]: [SystemName, number]): RunResult | undefined =>
    results.find((r) => r.ok && r.run === run && r.system === system && r.concurrency === concurrency);
  const out: Record<string, Ratio> = {};
  for (const def of RATIO_DEFS) {
    const perRun: number[] = [];
    for (let run = 1; run <= runs; run++) {
      const n = find(run, def.num);
      const d = find(run, def.den);
      if (n && d && d.callsPerSec > 0) perRun.push(n.callsPerSec / d.callsPerSec);
    }
    const m = perRun.length ? median(perRun) : null;
    out[def.key] = { median: m, perRun, target: def.target, met: m === null ? null : m >= def.target };
  }
  return out;
}

// ---- printing ----

export function formatTable(rows: SummaryRow[]): string {
  const head = ['system', 'conc', 'calls/s (median)', 'range', 'p50 µs', 'p99 µs', 'CPU cli/srv %', 'CPU µs/call cli/srv', 'runs ok'];
  const body = rows.map((r) => [
    r.system,
    String(r.concurrency),
    fmt(r.callsPerSec),
    r.runsOk ? `${fmt(r.callsPerSecMin)}–${fmt(r.callsPerSecMax)}` : '-',
    fmt(r.p50Us),
    fmt(r.p99Us),
    `${fmt(r.cpuClientPct)} / ${fmt(r.cpuServerPct)}`,
    `${fmt(r.clientCpuUsPerCall, 1)} / ${fmt(r.serverCpuUsPerCall, 1)}`,
    `${r.runsOk}/${r.runs}`,
  ]);
  return markdownTable(head, body, 2);
}

export function formatRatios(ratios: Record<string, Ratio>): string {
  return Object.entries(ratios)
    .map(([key, r]) => {
      const value = r.median === null ? 'not measured' : `${r.median.toFixed(2)}x`;
      const runs = r.perRun.length ? ` (per run: ${r.perRun.map((x) => x.toFixed(2)).join(', ')})` : '';
      const verdict = r.met === null ? '' : r.met ? '  MET' : '  NOT MET';
      return `  ${key.padEnd(26)} ${value.padStart(12)}  target >= ${r.target}x${verdict}${runs}`;
    })
    .join('\n');
}
