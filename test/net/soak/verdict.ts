/**
 * The soak's checks, as pure functions over what the run recorded (no processes, no clock), so a unit test can show
 * each one fails on the defect it is for (verdict.test.ts): which fault windows a call overlapped and whether its
 * failure was expected there; a bulk or stream "success" that moved the wrong bytes; the slope of a node's memory,
 * fitted across its restarts; handles and timers at rest, end against start, net of what open connections hold.
 */

export type CallKind = 'unary' | 'stream' | 'bulk';
export const CALL_KINDS: readonly CallKind[] = ['unary', 'stream', 'bulk'];
export type FaultKind = 'partition' | 'kill' | 'freeze' | 'degrade';

/** The statuses a call may fail with while a fault is on: the peer is gone, slow, or the call was given up. */
export const EXPECTED_IN_FAULT: readonly string[] = ['UNAVAILABLE', 'DEADLINE_EXCEEDED', 'CANCELLED'];
/** The harness's own code for a command whose node died (net-node.ts): expected only when that node is the one killed. */
export const CALLER_EXITED = 'NODE_EXITED';

/** From injecting a fault until the mesh has reconverged plus a margin; `endsAt` is Infinity while it lasts. */
export interface FaultWindow {
  id: number;
  kind: FaultKind;
  /** The host the fault hit (its node's name). */
  host: string;
  injectedAt: number;
  endsAt: number;
}

export interface CallResult {
  kind: CallKind;
  /** The node that made the call, and the one it called. */
  from: string;
  to: string;
  startedAt: number;
  endedAt: number;
  /** Absent when the call succeeded. */
  code?: string;
  /** It succeeded, but with fewer or other bytes or messages than asked for. */
  truncated?: boolean;
}

export type CallOutcome = 'ok' | 'truncated' | 'failed-expected' | 'failed-unexpected' | 'failed-outside';

export function overlappedWindows(call: Pick<CallResult, 'startedAt' | 'endedAt'>, windows: readonly FaultWindow[]): FaultWindow[] {
  return windows.filter((w) => call.startedAt <= w.endsAt && call.endedAt >= w.injectedAt);
}

/**
 * A truncation is a defect wherever it happens; a failure outside every window is one; inside, only an expected
 * status is not (or the harness losing a caller that was the node killed).
 */
export function classifyCall(call: CallResult, overlapped: readonly FaultWindow[]): CallOutcome {
  if (call.code === undefined) return call.truncated === true ? 'truncated' : 'ok';
  if (overlapped.length === 0) return 'failed-outside';
  if (EXPECTED_IN_FAULT.includes(call.code)) return 'failed-expected';
  if (call.code === CALLER_EXITED && overlapped.some((w) => w.kind === 'kill' && w.host === call.from)) return 'failed-expected';
  return 'failed-unexpected';
}

/** A bulk transfer is whole when it ended with the byte count asked for and the sha256 of the bytes of its seed. */
export function isTruncated(asked: { bytes: number; sha256: string }, got: { bytes: number; sha256: string }): boolean {
  return got.bytes !== asked.bytes || got.sha256 !== asked.sha256;
}

export interface Slope {
  /** Units of y per hour. */
  perHour: number;
  /** Its standard error (residuals' spread), per hour. */
  stderrPerHour: number;
  samples: number;
  /** Time covered, summed over the groups. */
  spanMs: number;
}

/**
 * The least-squares slope shared by several groups with an intercept each (a node's processes: a restart after kill -9
 * starts lower, which is not a fall, and its climb back is not a leak when the warm-up is left out by the caller).
 * Undefined with fewer than 3 points or no spread in time.
 */
export function pooledSlope(points: readonly { t: number; y: number; group: number }[]): Slope | undefined {
  const groups = new Map<number, { t: number; y: number }[]>();
  for (const p of points) {
    const list = groups.get(p.group) ?? [];
    list.push(p);
    groups.set(p.group, list);
  }
  let sxx = 0;
  let sxy = 0;
  let spanMs = 0;
  const centred: { dt: number; dy: number }[] = [];
  for (const list of groups.values()) {
    const tMean = list.reduce((s, p) => s + p.t, 0) / list.length;
    const yMean = list.reduce((s, p) => s + p.y, 0) / list.length;
    for (const p of list) {
      sxx += (p.t - tMean) ** 2;
      sxy += (p.t - tMean) * (p.y - yMean);
      centred.push({ dt: p.t - tMean, dy: p.y - yMean });
    }
    spanMs += Math.max(...list.map((p) => p.t)) - Math.min(...list.map((p) => p.t));
  }
  if (points.length < 3 || sxx === 0) return undefined;
  const slopePerMs = sxy / sxx;
  const freedom = Math.max(1, points.length - groups.size - 1);
  const residual = centred.reduce((s, c) => s + (c.dy - slopePerMs * c.dt) ** 2, 0) / freedom;
  return { perHour: slopePerMs * 3_600_000, stderrPerHour: Math.sqrt(residual / sxx) * 3_600_000, samples: points.length, spanMs };
}

export interface HealthPoint {
  t: number;
  incarnation: number;
  /** When this incarnation of the node started (or the calls did, for the first). */
  incarnationStartedAt: number;
  value: number;
}

/**
 * The slope a leak check judges: the points of the second half of the run (`from`), each process past its warm-up,
 * reduced to the lowest of each `bucketMs` (a leak raises the floor; bulk transfers in flight only add spikes above
 * it), fitted with an intercept per process that has 3 floors or more. A fit needs `minSpanMs` of time in all; less,
 * and there is no verdict (undefined), never a pass by default.
 */
export function memorySlope(points: readonly HealthPoint[], from: number, warmupMs: number, bucketMs: number, minSpanMs: number): Slope | undefined {
  const floors = new Map<string, { t: number; y: number; group: number }>();
  for (const p of points) {
    if (p.t < from || p.t < p.incarnationStartedAt + warmupMs) continue;
    const key = `${p.incarnation}:${Math.floor((p.t - from) / bucketMs)}`;
    const floor = floors.get(key);
    if (floor === undefined || p.value < floor.y) floors.set(key, { t: p.t, y: p.value, group: p.incarnation });
  }
  // a process with fewer than 3 floors (restarted late) would add a slope from 2 points: noise, not a trend
  const counts = new Map<number, number>();
  for (const floor of floors.values()) counts.set(floor.group, (counts.get(floor.group) ?? 0) + 1);
  const slope = pooledSlope([...floors.values()].filter((floor) => counts.get(floor.group)! >= MIN_FLOORS_PER_PROCESS));
  return slope !== undefined && slope.spanMs >= minSpanMs ? slope : undefined;
}
const MIN_FLOORS_PER_PROCESS = 3;

/**
 * What one open connection may hold at rest, by kind (getActiveResourcesInfo(), and TimersAll: every timer, unref'd
 * ones too): its socket, and its keepalive's interval timer and, every other moment on an idle connection, the probe
 * timer of the ping that interval sent. (Its frame timer and write-stall watchdog lapse within their timeouts, 30 s and
 * 60 s by default: the samples at rest wait for them, health.ts.) A kind may exceed its count at the start by the
 * probes of the connections open at the end, and by all of it for the connections more than at the start.
 */
export const PER_CONNECTION: Readonly<Record<string, number>> = { TCPSocketWrap: 1, TimersAll: 2 };
const COMES_AND_GOES_PER_CONNECTION: Readonly<Record<string, number>> = { TimersAll: 1 };

export interface ResourceGrowth {
  kind: string;
  start: number;
  end: number;
  /** What open connections explain. */
  allowed: number;
}

/** Kinds of resources that grew between two samples at rest beyond what the open connections explain. */
export function resourceGrowth(
  start: { resources: Record<string, number>; connections: number },
  end: { resources: Record<string, number>; connections: number },
): ResourceGrowth[] {
  const extraConnections = Math.max(0, end.connections - start.connections);
  const kinds = new Set([...Object.keys(start.resources), ...Object.keys(end.resources)]);
  const grown: ResourceGrowth[] = [];
  for (const kind of kinds) {
    const before = start.resources[kind] ?? 0;
    const after = end.resources[kind] ?? 0;
    const allowed = (PER_CONNECTION[kind] ?? 0) * extraConnections + (COMES_AND_GOES_PER_CONNECTION[kind] ?? 0) * end.connections;
    if (after > before + allowed) grown.push({ kind, start: before, end: after, allowed });
  }
  return grown;
}
