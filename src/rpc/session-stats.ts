/**
 * What `stats()` returns, for one session and for several summed (a server's, a channel's, a mesh peer's): plain
 * objects that JSON.stringify as they are. A sum keeps what closed sessions counted (StatsSum.retire), so its counts
 * only grow, as a Prometheus counter must, across reconnections; what is "now" (connections, calls in flight, streams
 * open, stalls going on) covers the sessions open now. Computed when asked, never on the call path.
 */
import type { SessionCounts } from '../session/session-counters.js';
import { addCallStats, emptyCallStats, type CallStats } from './call-stats.js';

/** Flow-control stalls of the streams this side sends on: the peer gave no credit for what was queued. */
export interface CreditStallStats {
  /** Stalls so far (one per stream each time it ran out of credit with bytes to send). */
  count: number;
  /** Time senders spent blocked so, in ms, summed over streams (stalls still going counted so far). */
  blockedMs: number;
  /** Streams blocked right now. */
  blockedNow: number;
}

/** One connection's counts, or several summed. */
export interface SessionStats {
  /** Connections open now that these counts cover (1 for a session's own, 0 once it closed). */
  connections: number;
  /** Calls by direction (`made` by this side, `served` by it), status and method. */
  calls: CallStats;
  /** Bytes read from the connection(s), frames and headers included. */
  bytesIn: number;
  /** Bytes written to the connection(s). */
  bytesOut: number;
  /** Streams open now (calls in progress both ways, ours waiting for a concurrency slot included). */
  streamsOpen: number;
  creditStalls: CreditStallStats;
  /** Round-trip time of the last answered ping (keepalive or `ping()`), in ms; for a sum the largest of its connections. Absent before the first. */
  rttMs?: number;
}

/** @internal A session's stats from what its layers counted. */
export function sessionStatsOf(counts: SessionCounts, calls: CallStats, open: boolean, rttMs: number | undefined): SessionStats {
  const stats: SessionStats = {
    connections: open ? 1 : 0,
    calls,
    bytesIn: counts.bytesIn,
    bytesOut: counts.bytesOut,
    streamsOpen: counts.streamsOpen,
    creditStalls: { count: counts.creditStalls, blockedMs: counts.creditStalledMs, blockedNow: counts.creditStalledNow },
  };
  if (rttMs !== undefined) stats.rttMs = rttMs;
  return stats;
}

export function emptySessionStats(): SessionStats {
  return { connections: 0, calls: emptyCallStats(), bytesIn: 0, bytesOut: 0, streamsOpen: 0, creditStalls: { count: 0, blockedMs: 0, blockedNow: 0 } };
}

/** Adds `from` into `into`. */
export function addSessionStats(into: SessionStats, from: SessionStats): void {
  into.connections += from.connections;
  addCallStats(into.calls, from.calls);
  into.bytesIn += from.bytesIn;
  into.bytesOut += from.bytesOut;
  into.streamsOpen += from.streamsOpen;
  into.creditStalls.count += from.creditStalls.count;
  into.creditStalls.blockedMs += from.creditStalls.blockedMs;
  into.creditStalls.blockedNow += from.creditStalls.blockedNow;
  if (from.rttMs !== undefined && (into.rttMs === undefined || from.rttMs > into.rttMs)) into.rttMs = from.rttMs;
}

/** What a stats source is: an RpcSession (or anything with its stats()). */
export interface StatsSource {
  stats(): SessionStats;
}

/**
 * @internal The sum of a changing set of sessions (a server's, a link's): what closed ones counted is kept (`retire`
 * them as they close), what open ones count is added when asked.
 */
export class StatsSum {
  private readonly retired = emptySessionStats();

  /** `session` closed: its final counts join the sum (nothing of it is "now" any more). */
  retire(session: StatsSource): void {
    const last = session.stats();
    last.connections = 0;
    last.streamsOpen = 0;
    last.creditStalls.blockedNow = 0;
    delete last.rttMs;
    for (const counts of [last.calls.made, last.calls.served, ...Object.values(last.calls.methods).flatMap((m) => [m.made, m.served])]) counts.inFlight = 0;
    addSessionStats(this.retired, last);
  }

  /** The closed sessions' counts plus those of `open`. */
  total(open: Iterable<StatsSource>): SessionStats {
    const sum = emptySessionStats();
    addSessionStats(sum, this.retired);
    for (const session of open) addSessionStats(sum, session.stats());
    return sum;
  }
}
