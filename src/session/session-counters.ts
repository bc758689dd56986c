/**
 * What a session counts for `stats()` and `gridwire inspect`: bytes read and written at the transport, and credit
 * stalls (a stream of ours with bytes queued and no send credit left from the peer: how often, and for how long in
 * total). The counts are plain number fields, changed in place: bytes once per chunk read and once per write to the
 * transport, a stall once as it begins and once as it ends (a clock read at each, never per frame or per call).
 * Knows nothing of methods or calls (rpc/call-stats.ts counts those).
 */

/** What a stream keeps of its credit stalls (stream.ts has these fields): since when it is blocked (undefined: it is not), and for how long it was in all. */
export interface CreditStallClock {
  creditBlockedSince: number | undefined;
  creditBlockedMs: number | undefined;
}

/** A connection's counts at one moment, as `session.counts()` reports them. */
export interface SessionCounts {
  /** Bytes read from the transport (every frame, headers included). */
  bytesIn: number;
  /** Bytes handed to the transport. */
  bytesOut: number;
  /** Times one of our streams had bytes to send and no send credit left from the peer. */
  creditStalls: number;
  /** Time our streams spent blocked so, in ms, summed over streams (stalls still going counted so far). */
  creditStalledMs: number;
  /** Our streams blocked on the peer's credit right now. */
  creditStalledNow: number;
  /** Streams open now, both directions (ours still waiting for a concurrency slot included). */
  streamsOpen: number;
  /** ms since the session was made. */
  ageMs: number;
}

export class SessionCounters {
  bytesIn = 0;
  creditStalls = 0;
  /** Time spent in credit stalls that have ended, in ms. */
  creditStalledMs = 0;
  /** On while `inspect` is: each new stream notes when it opened (stream.openedAt), for its age. Off, none does. */
  timeStreams = false;
  readonly createdAt = performance.now();

  /** The counts, with what only the session knows: the bytes written and the streams now. */
  snapshot(bytesOut: number, streams: Iterable<CreditStallClock>, streamsOpen: number): SessionCounts {
    const now = performance.now();
    let stalledNow = 0;
    let stalledMs = this.creditStalledMs;
    for (const stream of streams) {
      if (stream.creditBlockedSince === undefined) continue;
      stalledNow++;
      stalledMs += now - stream.creditBlockedSince;
    }
    return {
      bytesIn: this.bytesIn,
      bytesOut,
      creditStalls: this.creditStalls,
      creditStalledMs: stalledMs,
      creditStalledNow: stalledNow,
      streamsOpen,
      ageMs: now - this.createdAt,
    };
  }
}

/** `stream` found no send credit for what it has queued: a stall begins (stream.writeNext, on that transition only). */
export function creditStallBegins(stream: CreditStallClock, counters: SessionCounters): void {
  stream.creditBlockedSince = performance.now();
  counters.creditStalls++;
}

/** `stream` wrote again, or closed, after a stall: its time is added to the stream's and the connection's. */
export function creditStallEnds(stream: CreditStallClock, counters: SessionCounters): void {
  const ms = performance.now() - stream.creditBlockedSince!;
  stream.creditBlockedSince = undefined;
  stream.creditBlockedMs = (stream.creditBlockedMs ?? 0) + ms;
  counters.creditStalledMs += ms;
}
