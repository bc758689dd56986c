/** The soak's words: the progress line every ~30 s and the final report, from the live objects or the summary. */
import type { SoakCluster } from './cluster.js';
import type { FaultRunner } from './faults.js';
import type { HealthSampler } from './health.js';
import { formatDuration } from './options.js';
import type { MemoryField, SoakSummary } from './summary.js';
import { CALL_KINDS } from './verdict.js';
import type { Workload } from './workload.js';

const MiB = 2 ** 20;

export function progressLine(elapsedMs: number, workload: Workload, faults: FaultRunner, health: HealthSampler, cluster: SoakCluster): string {
  const { byKind } = workload.tally;
  const calls = CALL_KINDS.map((k) => {
    const t = byKind[k];
    return `${k} ${t.ok}/${t['failed-expected']}/${t['failed-outside'] + t['failed-unexpected']}`;
  }).join(' ');
  const truncations = CALL_KINDS.reduce((s, k) => s + byKind[k].truncated, 0);
  const bytes = CALL_KINDS.reduce((s, k) => s + byKind[k].bytes, 0);
  const rss = cluster.names.map((name, i) => `${name}${cluster.state(i) === 'up' ? '' : `(${cluster.state(i)})`} ${((health.latest(i)?.rss ?? NaN) / MiB).toFixed(0)}`).join(' ');
  const fault = faults.current ? `#${faults.current.id} ${faults.current.kind} ${faults.current.host}` : 'none';
  return `[soak +${formatDuration(elapsedMs)}] calls ok/expected-fail/defect: ${calls}; in flight ${workload.inFlight}; ${(bytes / MiB).toFixed(0)} MiB moved; truncations ${truncations}; faults ${faults.records.length} (now: ${fault}); RSS MiB ${rss}`;
}

export function finalReport(summary: SoakSummary): string {
  const lines: string[] = [];
  const o = summary.options;
  lines.push(`soak: ${o.hosts} hosts, ${formatDuration(o.durationMs)} of calls, seed ${o.seed}, keepalive ${o.keepaliveMs === 0 ? 'library defaults' : `${o.keepaliveMs} ms`}, margin ${o.marginMs} ms${o.selfTest ? `, SELF-TEST ${o.selfTest}` : ''}; took ${formatDuration(summary.elapsedMs)}`);
  lines.push('', 'calls          ok  (in fault)  failed-expected  failed-outside  failed-unexpected  truncated      MiB');
  for (const kind of CALL_KINDS) {
    const t = summary.calls.byKind[kind];
    lines.push(`  ${kind.padEnd(8)} ${String(t.ok).padStart(7)} ${String(t.inFault).padStart(11)} ${String(t['failed-expected']).padStart(16)} ${String(t['failed-outside']).padStart(15)} ${String(t['failed-unexpected']).padStart(18)} ${String(t.truncated).padStart(10)} ${(t.bytes / MiB).toFixed(0).padStart(8)}`);
  }
  lines.push(`  total ${summary.calls.total} calls, ${(summary.bytesMoved / MiB).toFixed(0)} MiB moved by calls that succeeded; truncations ${summary.truncations}`);
  lines.push(`  failure statuses inside faults: ${codes(summary.calls.codesInside)}; outside: ${codes(summary.calls.codesOutside)}`);
  if (summary.calls.defects.length > 0) lines.push('  defects (first ones):', ...summary.calls.defects.map((d) => `    ${d}`));
  lines.push('', `faults (${summary.faults.length}):`);
  for (const f of summary.faults) {
    const recovered = f.reconvergeMs === undefined ? `NOT recovered: ${f.error}` : `reconverged ${(f.reconvergeMs / 1000).toFixed(1)} s after undone`;
    lines.push(`  #${f.id} +${formatDuration(f.atMs)} ${f.kind.padEnd(9)} ${f.host.padEnd(4)} held ${(f.holdMs / 1000).toFixed(1)} s, ${recovered}, window ${(f.windowMs / 1000).toFixed(1)} s`);
  }
  lines.push('', 'nodes          RSS MiB start/end slope/h   heap MiB start/end slope/h   external slope/h   handles+timers at rest start -> end (connections)');
  for (const n of summary.nodes) {
    const mem = (field: MemoryField): string => {
      const m = n.memory[field];
      return `${m.startMiB.toFixed(1)}/${m.endMiB.toFixed(1)} ${slope(m.slopeMiBPerHour, m.stderrMiBPerHour)}`;
    };
    const rest = `${resources(n.atRestStart)} -> ${resources(n.atRestEnd)}`;
    lines.push(`  ${n.name.padEnd(4)}${n.restarts > 0 ? ` (restarted ${n.restarts}x)` : ''}  ${mem('rss')}   ${mem('heapUsed')}   ${slope(n.memory.external.slopeMiBPerHour, n.memory.external.stderrMiBPerHour)}   ${rest}`);
  }
  lines.push(`  budgets, MiB/h: RSS ${summary.budgets.rss}, heap ${summary.budgets.heapUsed}, external ${summary.budgets.external}; slopes fitted on the second half, each process past its warm-up`);
  lines.push('', 'checks:');
  for (const c of summary.checks) lines.push(`  ${c.skipped === true ? 'SKIP' : c.ok ? 'PASS' : 'FAIL'}  ${c.name}: ${c.detail}`);
  const skipped = summary.checks.filter((c) => c.skipped === true).length;
  lines.push('', `${summary.ok ? 'soak PASSED' : 'soak FAILED'}${skipped > 0 ? ` (${skipped} checks not judged: too short a run)` : ''}`);
  return lines.join('\n');
}

function codes(counts: Record<string, number>): string {
  const entries = Object.entries(counts);
  return entries.length === 0 ? 'none' : entries.map(([code, n]) => `${code} ${n}`).join(', ');
}

function slope(perHour: number | undefined, stderr: number | undefined): string {
  return perHour === undefined ? 'n/a' : `${perHour >= 0 ? '+' : ''}${perHour.toFixed(1)}±${(stderr ?? 0).toFixed(1)}`;
}

function resources(health: { resources: Record<string, number>; connections: number } | undefined): string {
  if (health === undefined) return '?';
  const r = health.resources;
  const handles = Object.entries(r).filter(([kind]) => kind !== 'Timeout' && kind !== 'TimersAll').reduce((s, [, n]) => s + n, 0);
  return `${handles}h+${r.TimersAll ?? r.Timeout ?? 0}t (${health.connections}c)`;
}
