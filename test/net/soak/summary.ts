/**
 * The soak's verdict: what the run recorded (calls' tally, fault records, health samples, samples at rest, nodes' log
 * lines) turned into one summary (printed by report.ts, or as JSON) and its list of checks; the run passes only if
 * every check does. The budgets are here, justified in soak.ts's header.
 */
import type { NodeHealth } from './cluster.js';
import type { FaultRecord } from './faults.js';
import type { HealthSample } from './health.js';
import type { SoakOptions } from './options.js';
import { CALL_KINDS, memorySlope, overlappedWindows, resourceGrowth, type FaultWindow, type ResourceGrowth, type Slope } from './verdict.js';
import type { WorkloadTally } from './workload.js';

const MiB = 2 ** 20;

/** Memory growth allowed per node, MiB per hour of the fitted slope (soak.ts's header says why these). */
export const BUDGET_MIB_PER_HOUR = { rss: 64, heapUsed: 16, external: 16 } as const;
export type MemoryField = keyof typeof BUDGET_MIB_PER_HOUR;
const MEMORY_FIELDS = Object.keys(BUDGET_MIB_PER_HOUR) as MemoryField[];
/** A slope needs this much time of samples after the warm-ups, summed over a node's processes; less: no verdict. */
export const MIN_FIT_SPAN_MS = 30_000;
/**
 * Memory is judged in runs this long or longer: a slope per hour from a shorter second half multiplies the floor's
 * wander (±5 MiB) past any useful budget (3-minute runs measured -170..+310 MiB/h of RSS with no leak).
 */
export const MIN_MEMORY_RUN_MS = 8 * 60_000;
/**
 * Memory is fitted on the lowest sample of each such span (verdict.ts memorySlope): 6 samples at the default 5 s; in a
 * run too short for 5 of them in its second half, a fifth of that half (at least one sample interval).
 */
export const FLOOR_BUCKET_MS = 30_000;
/** A "connection lost" log line outside every fault window: a false keepalive timeout or a dropped connection. */
const CONNECTION_LOST = /connection lost|did not answer a ping/;

export interface Check {
  name: string;
  ok: boolean;
  /** Not judged (too short a run): counts as passed, and the report says so. */
  skipped?: boolean;
  detail: string;
}

export interface NodeSummary {
  name: string;
  restarts: number;
  /** Per field: first and last sample (MiB), and the fitted slope (MiB/h, undefined when too little data). */
  memory: Record<MemoryField, { startMiB: number; endMiB: number; slopeMiBPerHour: number | undefined; stderrMiBPerHour: number | undefined; samples: number }>;
  atRestStart: NodeHealth | undefined;
  atRestEnd: NodeHealth | undefined;
  grown: ResourceGrowth[];
  connectionLostOutsideFaults: string[];
}

export interface SoakSummary {
  ok: boolean;
  options: SoakOptions;
  elapsedMs: number;
  calls: WorkloadTally & { total: number };
  bytesMoved: number;
  truncations: number;
  faults: (Omit<FaultRecord, 'injectedAt' | 'endsAt'> & { atMs: number; windowMs: number })[];
  nodes: NodeSummary[];
  budgets: typeof BUDGET_MIB_PER_HOUR;
  checks: Check[];
}

export interface SoakRecord {
  options: SoakOptions;
  names: string[];
  startedAt: number;
  /** When the calls started and stopped. */
  callsStartedAt: number;
  callsStoppedAt: number;
  warmupMs: number;
  tally: WorkloadTally;
  faults: FaultRecord[];
  series: HealthSample[][];
  restarts: number[];
  atRestStart: (NodeHealth | undefined)[];
  atRestEnd: (NodeHealth | undefined)[];
  logLines: { at: number; level: string; message: string }[][];
  /** Set when the mesh did not reconverge at the end. */
  finalConvergenceError: string | undefined;
}

export function summarize(record: SoakRecord): SoakSummary {
  const fitFrom = record.callsStartedAt + (record.callsStoppedAt - record.callsStartedAt) / 2;
  const bucketMs = Math.max(record.options.sampleMs, Math.min(FLOOR_BUCKET_MS, (record.callsStoppedAt - fitFrom) / 5));
  const nodes = record.names.map((name, i) => nodeSummary(record, name, i, fitFrom, bucketMs));
  const byKind = Object.values(record.tally.byKind);
  const sum = (pick: (k: (typeof byKind)[number]) => number): number => byKind.reduce((s, k) => s + pick(k), 0);
  const truncations = sum((k) => k.truncated);
  const summary: SoakSummary = {
    ok: false,
    options: record.options,
    elapsedMs: Date.now() - record.startedAt,
    calls: { ...record.tally, total: sum((k) => k.ok + k.truncated + k['failed-expected'] + k['failed-unexpected'] + k['failed-outside']) },
    bytesMoved: sum((k) => k.bytes),
    truncations,
    faults: record.faults.map(({ injectedAt, endsAt, ...rest }) => ({ ...rest, atMs: injectedAt - record.startedAt, windowMs: endsAt - injectedAt })),
    nodes,
    budgets: BUDGET_MIB_PER_HOUR,
    checks: [],
  };
  summary.checks = checks(record, summary);
  summary.ok = summary.checks.every((c) => c.ok);
  return summary;
}

function nodeSummary(record: SoakRecord, name: string, i: number, fitFrom: number, bucketMs: number): NodeSummary {
  const series = record.series[i]!;
  // memory is judged between faults: during one, a node rightly holds more (data for a slow peer, calls waiting)
  const quiet = series.filter((s) => overlappedWindows({ startedAt: s.t, endedAt: s.t }, record.faults).length === 0);
  const memory = Object.fromEntries(MEMORY_FIELDS.map((field) => {
    const slope: Slope | undefined = memorySlope(quiet.map((s) => ({ t: s.t, incarnation: s.incarnation, incarnationStartedAt: s.incarnationStartedAt, value: s[field] })), fitFrom, record.warmupMs, bucketMs, MIN_FIT_SPAN_MS);
    return [field, {
      startMiB: (series[0]?.[field] ?? NaN) / MiB,
      endMiB: (series[series.length - 1]?.[field] ?? NaN) / MiB,
      slopeMiBPerHour: slope === undefined ? undefined : slope.perHour / MiB,
      stderrMiBPerHour: slope === undefined ? undefined : slope.stderrPerHour / MiB,
      samples: slope?.samples ?? 0,
    }];
  })) as NodeSummary['memory'];
  const start = record.atRestStart[i];
  const end = record.atRestEnd[i];
  const windows: readonly FaultWindow[] = record.faults;
  const connectionLostOutsideFaults = record.logLines[i]!
    .filter((line) => line.at >= record.callsStartedAt && CONNECTION_LOST.test(line.message) && overlappedWindows({ startedAt: line.at, endedAt: line.at }, windows).length === 0)
    .map((line) => `+${((line.at - record.startedAt) / 1000).toFixed(1)}s ${name}: ${line.message}`);
  return { name, restarts: record.restarts[i]!, memory, atRestStart: start, atRestEnd: end, grown: start && end ? resourceGrowth(start, end) : [], connectionLostOutsideFaults };
}

function checks(record: SoakRecord, summary: SoakSummary): Check[] {
  const list: Check[] = [];
  const add = (name: string, ok: boolean, detail: string): void => void list.push({ name, ok, detail });
  const kinds = record.tally.byKind;
  const outside = CALL_KINDS.reduce((s, k) => s + kinds[k]['failed-outside'], 0);
  const unexpected = CALL_KINDS.reduce((s, k) => s + kinds[k]['failed-unexpected'], 0);
  add('every kind of call ran and succeeded', CALL_KINDS.every((k) => kinds[k].ok > 0),
    CALL_KINDS.map((k) => `${k} ${kinds[k].ok} ok`).join(', '));
  add('no failed call outside fault windows', outside === 0, `${outside} failed outside`);
  add('failures inside fault windows have an expected status', unexpected === 0, `${unexpected} with another status (expected: UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED)`);
  add('no silent truncation', summary.truncations === 0, `${summary.truncations} transfers or streams "succeeded" with the wrong bytes or count`);
  const failedFaults = record.faults.filter((f) => f.error !== undefined);
  add('every fault was undone and the mesh reconverged', failedFaults.length === 0 && record.finalConvergenceError === undefined,
    [...failedFaults.map((f) => `#${f.id} ${f.kind} ${f.host}: ${f.error}`), ...(record.finalConvergenceError ? [`at the end: ${record.finalConvergenceError}`] : [])].join('; ') || `${record.faults.length} faults, all recovered`);
  const lost = summary.nodes.flatMap((n) => n.connectionLostOutsideFaults);
  add('no connection lost outside fault windows (no false keepalive timeout)', lost.length === 0, lost.length === 0 ? 'none' : lost.slice(0, 5).join('; '));
  for (const field of MEMORY_FIELDS) {
    if (record.options.durationMs < MIN_MEMORY_RUN_MS) {
      list.push({ name: `${field} flat`, ok: true, skipped: true, detail: `not judged: needs --duration ${MIN_MEMORY_RUN_MS / 60_000}m or more` });
      continue;
    }
    const over = summary.nodes.filter((n) => overBudget(n.memory[field].slopeMiBPerHour, n.memory[field].stderrMiBPerHour, BUDGET_MIB_PER_HOUR[field]));
    const fitted = summary.nodes.filter((n) => n.memory[field].slopeMiBPerHour !== undefined);
    const ok = over.length === 0 && fitted.length > 0;
    const detail = fitted.length === 0
      ? `no node has ${MIN_FIT_SPAN_MS / 1000} s of samples past its warm-up in the second half: run longer`
      : `slopes ${summary.nodes.map((n) => `${n.name} ${fmtSlope(n.memory[field].slopeMiBPerHour)}±${(n.memory[field].stderrMiBPerHour ?? 0).toFixed(1)}`).join(', ')} MiB/h; budget ${BUDGET_MIB_PER_HOUR[field]}`;
    add(`${field} flat (slope over the second half, less 2 standard errors, <= ${BUDGET_MIB_PER_HOUR[field]} MiB/h per node)`, ok, detail);
  }
  const grown = summary.nodes.flatMap((n) => n.grown.map((g) => `${n.name} ${g.kind} ${g.start} -> ${g.end}${g.allowed > 0 ? ` (connections explain +${g.allowed})` : ''}`));
  const unmeasured = summary.nodes.filter((n) => n.atRestStart === undefined || n.atRestEnd === undefined).map((n) => n.name);
  add('handles and timers at rest: no more at the end than at the start, net of open connections', grown.length === 0 && unmeasured.length === 0,
    [...grown, ...unmeasured.map((name) => `${name}: not measured at rest`)].join('; ') || 'equal or fewer on every node');
  return list;
}

/**
 * Over budget beyond the fit's noise: the slope less two of its standard errors (the floor wanders by a few MiB, more
 * so for a process restarted late, with few floors) still above the budget. Longer runs shrink the error and tighten
 * the check; the report gives both numbers.
 */
export function overBudget(slope: number | undefined, stderr: number | undefined, budget: number): boolean {
  return slope !== undefined && slope - 2 * (stderr ?? 0) > budget;
}

function fmtSlope(slope: number | undefined): string {
  return slope === undefined ? 'n/a' : (slope >= 0 ? '+' : '') + slope.toFixed(1);
}
