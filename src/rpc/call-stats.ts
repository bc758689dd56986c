/**
 * Calls counted by method, status and direction (calls this side made / calls it served), for `stats()`, the
 * Prometheus collector and `gridwire inspect`. One CallCounter per method and direction per session, made the first
 * time the method is used and kept (the methods are those this side defined: its clients' and its services'; a
 * method the peer names that this side does not serve counts under the one `unknown` counter, so the peer cannot
 * make the set grow). A call costs a lookup (one comparison when the method is the last one used), two increments as
 * it starts and two as it finishes: statuses are counted in a typed array indexed by code. Nothing is allocated per
 * call. Knows nothing of streams or connections.
 */
import { Status, statusName } from '../wire/constants.js';
import type { MethodDescriptor, MethodKind } from './service.js';

/** Which way a call went: `made` by this side (it was the client), `served` by it (its handler ran). */
export type CallDirection = 'made' | 'served';

/** What `stats()` reports of calls, one direction. */
export interface CallCounts {
  /** Calls started (a call that failed before its stream opened, e.g. past its deadline or on a closing connection, included). */
  started: number;
  /** Calls started and not yet finished. */
  inFlight: number;
  /** Finished calls whose status was not OK. */
  errors: number;
  /** Finished calls by status name (`OK`, `NOT_FOUND`...); only statuses seen are present. */
  byStatus: Record<string, number>;
}

/** Calls both ways: the totals, and per method path (`service/method`; `unknown` for methods this side does not serve). */
export interface CallStats {
  made: CallCounts;
  served: CallCounts;
  methods: Record<string, { made: CallCounts; served: CallCounts }>;
}

/** Codes past UNAUTHENTICATED (a peer's trailer may carry any number) count in the last slot, as UNKNOWN's name says. */
const STATUS_SLOTS = Status.UNAUTHENTICATED + 2;
const OTHER_STATUS = STATUS_SLOTS - 1;

/** The label of every method the peer named that this side does not serve. */
export const UNKNOWN_METHOD = 'unknown';

/** One method's calls in one direction on one session. */
export class CallCounter {
  started = 0;
  inFlight = 0;
  readonly finished = new Float64Array(STATUS_SLOTS);

  constructor(
    readonly method: string,
    readonly direction: CallDirection,
    /** The method's kind (inspection names it); undefined for `unknown`. */
    readonly kind?: MethodKind,
  ) {}

  start(): void {
    this.started++;
    this.inFlight++;
  }

  finish(status: number): void {
    this.inFlight--;
    this.finished[status >= 0 && status < OTHER_STATUS ? status : OTHER_STATUS]!++;
  }

  /** A call that failed before it could start (nothing sent): started and finished at once. */
  failedToStart(status: number): void {
    this.start();
    this.finish(status);
  }
}

/** What a call object that counts itself exposes, so inspection can name a stream's method from its owner. */
export interface CountedCall {
  readonly counter: CallCounter;
}

/** One session's call counters (made by RpcSession; not exported from the package). */
export class CallCounters {
  private readonly made = new Map<MethodDescriptor, CallCounter>();
  private readonly served = new Map<MethodDescriptor, CallCounter>();
  /** The methods the peer named that this side does not serve. */
  readonly unknownServed = new CallCounter(UNKNOWN_METHOD, 'served');
  private lastMade: MethodDescriptor | undefined;
  private lastMadeCounter: CallCounter | undefined;
  private lastServed: MethodDescriptor | undefined;
  private lastServedCounter: CallCounter | undefined;

  /** The counter of calls this side makes to `descriptor`. */
  madeTo(descriptor: MethodDescriptor): CallCounter {
    if (descriptor === this.lastMade) return this.lastMadeCounter!;
    const counter = counterIn(this.made, descriptor, 'made');
    this.lastMade = descriptor;
    this.lastMadeCounter = counter;
    return counter;
  }

  /** The counter of calls this side serves for `descriptor` (a method of its own services). */
  servedFor(descriptor: MethodDescriptor): CallCounter {
    if (descriptor === this.lastServed) return this.lastServedCounter!;
    const counter = counterIn(this.served, descriptor, 'served');
    this.lastServed = descriptor;
    this.lastServedCounter = counter;
    return counter;
  }

  /** Every counter, both directions. */
  *counters(): IterableIterator<CallCounter> {
    yield* this.made.values();
    yield* this.served.values();
    if (this.unknownServed.started > 0) yield this.unknownServed;
  }

  snapshot(): CallStats {
    const stats: CallStats = { made: emptyCounts(), served: emptyCounts(), methods: {} };
    for (const counter of this.counters()) addCounter(stats, counter);
    return stats;
  }
}

function counterIn(map: Map<MethodDescriptor, CallCounter>, descriptor: MethodDescriptor, direction: CallDirection): CallCounter {
  let counter = map.get(descriptor);
  if (counter === undefined) {
    counter = new CallCounter(descriptor.path, direction, descriptor.def.kind);
    map.set(descriptor, counter);
  }
  return counter;
}

export function emptyCounts(): CallCounts {
  return { started: 0, inFlight: 0, errors: 0, byStatus: {} };
}

/** Adds `counter` to the totals of its direction and to its method's (two descriptors of one path add up). */
function addCounter(stats: CallStats, counter: CallCounter): void {
  const method = (stats.methods[counter.method] ??= { made: emptyCounts(), served: emptyCounts() });
  for (const counts of [stats[counter.direction], method[counter.direction]]) {
    counts.started += counter.started;
    counts.inFlight += counter.inFlight;
    const finished = counter.finished;
    for (let code = 0; code < finished.length; code++) {
      const n = finished[code]!;
      if (n === 0) continue;
      const name = code === OTHER_STATUS ? 'UNKNOWN' : statusName(code);
      counts.byStatus[name] = (counts.byStatus[name] ?? 0) + n;
      if (code !== Status.OK) counts.errors += n;
    }
  }
}

/** Adds `from` into `into` (stats of several sessions summed). */
export function addCallStats(into: CallStats, from: CallStats): void {
  addCounts(into.made, from.made);
  addCounts(into.served, from.served);
  for (const [path, method] of Object.entries(from.methods)) {
    const target = (into.methods[path] ??= { made: emptyCounts(), served: emptyCounts() });
    addCounts(target.made, method.made);
    addCounts(target.served, method.served);
  }
}

function addCounts(into: CallCounts, from: CallCounts): void {
  into.started += from.started;
  into.inFlight += from.inFlight;
  into.errors += from.errors;
  for (const [name, n] of Object.entries(from.byStatus)) into.byStatus[name] = (into.byStatus[name] ?? 0) + n;
}

export function emptyCallStats(): CallStats {
  return { made: emptyCounts(), served: emptyCounts(), methods: {} };
}
