/**
 * What a demo run found: the calls tallied per direction (from the nodes' tick reports), the transfers, the
 * checksums, the kill's story; the checks that decide the exit code; and the final table a human reads (or the one
 * object `--json` prints). Knows nothing of processes.
 */
import { formatBytes, table } from '../format.js';
import type { CallDelta, TransferProgress } from './messages.js';

const MiB = 1024 * 1024;

export interface DirectionStats {
  calls: number;
  byStatus: Record<string, number>;
  expected: Record<string, number>;
  latenciesMs: number[];
}

/** The nodes' call reports added up, per direction (`A->B`). */
export class CallTally {
  readonly directions = new Map<string, DirectionStats>();

  add(from: string, calls: Record<string, CallDelta>): void {
    for (const [to, delta] of Object.entries(calls)) {
      const key = `${from}->${to}`;
      let stats = this.directions.get(key);
      if (stats === undefined) this.directions.set(key, (stats = { calls: 0, byStatus: {}, expected: {}, latenciesMs: [] }));
      for (const [status, n] of Object.entries(delta.byStatus)) {
        stats.byStatus[status] = (stats.byStatus[status] ?? 0) + n;
        stats.calls += n;
      }
      for (const [status, n] of Object.entries(delta.expected)) {
        stats.expected[status] = (stats.expected[status] ?? 0) + n;
        stats.calls += n;
      }
      for (const ms of delta.latenciesMs) stats.latenciesMs.push(ms);
    }
  }

  /** OK calls so far, all directions. */
  get okCalls(): number {
    let n = 0;
    for (const stats of this.directions.values()) n += stats.byStatus.OK ?? 0;
    return n;
  }
}

/** The `q` quantile (0..1) of `values` by nearest rank; NaN for none. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

export interface TransferSummary {
  from: string;
  to: string;
  bytes: number;
  ms: number;
  mibPerSec: number;
  attempts: number;
  /** The offset the last resume started from: the receiver's last verified offset (0: never resumed). */
  resumedFrom: number;
  /** Bytes sent beyond the dataset's size: what the resumes sent again. */
  resentBytes: number;
  error?: string;
}

export interface KillSummary {
  /** Where A -> B stood when B was killed. */
  atBytes: number;
  atPercent: number;
  /** The fail-fast probe: a call from A to B just after the kill. */
  probe?: { status: string; ms: number; timeoutMs: number };
  /** From the kill to B's restart, and from its restart to every lane of the mesh up again. */
  downMs?: number;
  redialMs?: number;
}

export interface DemoSummary {
  ok: boolean;
  /** Which checks failed, in words; empty when ok. */
  failed: string[];
  transport: 'mutual TLS' | 'plain TCP';
  sizeBytes: number;
  wallMs: number;
  transfers: TransferSummary[];
  unary: {
    intervalMs: number;
    calls: number;
    p50Ms: number;
    p99Ms: number;
    byStatus: Record<string, number>;
    /** Failures outside any kill window: the demo requires 0. */
    errors: number;
    /** Failures during the kill of B (--kill), by status. */
    expectedErrors: Record<string, number>;
    byDirection: Record<string, { calls: number; p50Ms: number; p99Ms: number; errors: number; expected: number }>;
  };
  checksums: { source: string; received: Record<string, string | null>; equal: boolean };
  /** CPU time (user + system) of each node process and of the orchestrator, ms: what the run cost, however busy the machine. */
  cpuMs: Record<string, number>;
  /** Each node's highest RSS (sampled every tick), bytes. */
  peakRssBytes: Record<string, number>;
  kill?: KillSummary;
}

const sum = (counts: Record<string, number>): number => Object.values(counts).reduce((a, b) => a + b, 0);

export function summarizeUnary(tally: CallTally, intervalMs: number): DemoSummary['unary'] {
  const all: number[] = [];
  const byStatus: Record<string, number> = {};
  const expectedErrors: Record<string, number> = {};
  const byDirection: DemoSummary['unary']['byDirection'] = {};
  let calls = 0;
  for (const key of [...tally.directions.keys()].sort()) {
    const stats = tally.directions.get(key)!;
    calls += stats.calls;
    for (const ms of stats.latenciesMs) all.push(ms);
    for (const [status, n] of Object.entries(stats.byStatus)) byStatus[status] = (byStatus[status] ?? 0) + n;
    for (const [status, n] of Object.entries(stats.expected)) expectedErrors[status] = (expectedErrors[status] ?? 0) + n;
    byDirection[key] = {
      calls: stats.calls,
      p50Ms: round(quantile(stats.latenciesMs, 0.5)),
      p99Ms: round(quantile(stats.latenciesMs, 0.99)),
      errors: stats.calls - (stats.byStatus.OK ?? 0) - sum(stats.expected),
      expected: sum(stats.expected),
    };
  }
  return {
    intervalMs, calls, p50Ms: round(quantile(all, 0.5)), p99Ms: round(quantile(all, 0.99)), byStatus,
    errors: calls - (byStatus.OK ?? 0) - sum(expectedErrors), expectedErrors, byDirection,
  };
}

export function summarizeTransfer(progress: TransferProgress, error?: string): TransferSummary {
  const ms = (progress.finishedAt ?? Date.now()) - progress.startedAt;
  return {
    from: 'A', to: progress.to, bytes: progress.doneBytes, ms, mibPerSec: round(progress.doneBytes / MiB / (ms / 1000)),
    attempts: progress.attempts, resumedFrom: progress.resumedFrom, resentBytes: progress.resentBytes,
    ...(error === undefined ? {} : { error }),
  };
}

function round(value: number): number {
  return Number.isFinite(value) ? Math.round(value * 100) / 100 : NaN;
}

/** The checks, in words, that `summary` fails. `expectKill`: --kill was given, so a resume must have happened. */
export function failedChecks(summary: Omit<DemoSummary, 'ok' | 'failed'>, expectedDirections: readonly string[], expectKill: boolean): string[] {
  const failed: string[] = [];
  for (const t of summary.transfers) {
    if (t.error !== undefined) failed.push(`transfer ${t.from} -> ${t.to} failed: ${t.error}`);
    else if (t.bytes !== summary.sizeBytes) failed.push(`transfer ${t.from} -> ${t.to} moved ${t.bytes} bytes, not ${summary.sizeBytes}`);
  }
  for (const [node, digest] of Object.entries(summary.checksums.received)) {
    if (digest === null) failed.push(`${node} has no checksum`);
    else if (digest !== summary.checksums.source) failed.push(`${node}'s checksum ${digest.slice(0, 16)}... differs from the source's ${summary.checksums.source.slice(0, 16)}...`);
  }
  if (summary.unary.errors > 0) {
    const statuses = Object.entries(summary.unary.byStatus).filter(([s]) => s !== 'OK').map(([s, n]) => `${s} ${n}`).join(', ');
    failed.push(`${summary.unary.errors} unary call(s) failed outside the kill window (${statuses})`);
  }
  for (const direction of expectedDirections) {
    if ((summary.unary.byDirection[direction]?.calls ?? 0) === 0) failed.push(`no unary call went ${direction.replace('->', ' -> ')}`);
  }
  if (expectKill) {
    const probe = summary.kill?.probe;
    if (probe === undefined) failed.push('--kill: B was not killed (the transfer ended before 40 %?)');
    else if (probe.status !== 'UNAVAILABLE' || probe.ms >= probe.timeoutMs / 2) {
      failed.push(`--kill: a call to the killed B ended ${probe.status} after ${probe.ms.toFixed(1)} ms, not UNAVAILABLE at once`);
    }
    const toB = summary.transfers.find((t) => t.to === 'B');
    if (toB !== undefined && toB.resumedFrom === 0) failed.push('--kill: the transfer to B did not resume from a verified offset');
  }
  return failed;
}

// --- the human table ---------------------------------------------------------------------------------------------

const ms = (value: number): string => (Number.isNaN(value) ? '-' : value.toFixed(2));

/** The final report: transfers, unary calls, statuses, checksums, the kill, the verdict. */
export function renderSummary(summary: DemoSummary): string {
  const lines: string[] = [''];
  lines.push(`transfers (${formatBytes(summary.sizeBytes)} each, at the same time, bulk calls on the data lanes)`);
  lines.push(...table([
    ['', 'bytes', 'time', 'MiB/s', 'attempts', 'resumed from', 're-sent'],
    ...summary.transfers.map((t) => [
      `${t.from} -> ${t.to}`, formatBytes(t.bytes), `${(t.ms / 1000).toFixed(1)} s`, t.mibPerSec.toFixed(1), String(t.attempts),
      t.resumedFrom > 0 ? formatBytes(t.resumedFrom) : '-', t.resentBytes > 0 ? formatBytes(t.resentBytes) : '-',
    ]),
  ], { indent: '  ', leftColumns: 1 }));
  const u = summary.unary;
  lines.push('', `unary calls during the transfers (one every ${u.intervalMs} ms per direction, control lanes)`);
  lines.push(...table([
    ['', 'calls', 'p50 ms', 'p99 ms', 'errors', ...(summary.kill ? ['expected'] : [])],
    ...Object.entries(u.byDirection).map(([key, d]) => [
      key.replace('->', ' -> '), String(d.calls), ms(d.p50Ms), ms(d.p99Ms), String(d.errors), ...(summary.kill ? [String(d.expected)] : []),
    ]),
    ['all', String(u.calls), ms(u.p50Ms), ms(u.p99Ms), String(u.errors), ...(summary.kill ? [String(sum(u.expectedErrors))] : [])],
  ], { indent: '  ', leftColumns: 1 }));
  const statuses = Object.entries(u.byStatus).map(([s, n]) => `${s} ${n}`).join(', ');
  lines.push(`  by status: ${statuses || 'none'}`);
  if (summary.kill !== undefined) {
    const expected = Object.entries(u.expectedErrors).map(([s, n]) => `${s} ${n}`).join(', ');
    lines.push(`  expected, during the kill of B: ${expected || 'none'}`);
  }
  const cpu = Object.entries(summary.cpuMs).map(([node, ms]) => `${node} ${(ms / 1000).toFixed(1)} s`).join(', ');
  lines.push(`  CPU time: ${cpu} (wall ${(summary.wallMs / 1000).toFixed(1)} s)`);
  lines.push(`  peak RSS: ${Object.entries(summary.peakRssBytes).map(([node, bytes]) => `${node} ${formatBytes(bytes)}`).join(', ')}`);
  lines.push('', 'checksums (sha256)');
  lines.push(...table([
    ['A (source)', summary.checksums.source, ''],
    ...Object.entries(summary.checksums.received).map(([node, digest]) => [
      node, digest ?? '(none)', digest === summary.checksums.source ? 'equal' : 'DIFFERS',
    ]),
  ], { indent: '  ', leftColumns: 3 }));
  lines.push('');
  if (summary.ok) {
    lines.push(`ok: both copies complete and equal, ${u.calls - sum(u.expectedErrors)} unary calls with 0 errors${summary.kill ? ', B killed and resumed' : ''} (${(summary.wallMs / 1000).toFixed(1)} s)`);
  } else {
    lines.push('FAILED:', ...summary.failed.map((f) => `  - ${f}`));
  }
  return lines.join('\n');
}
