/**
 * Counts the work a peer can make us do without asking anything of it in return (pings we must answer, replies it
 * solicits while not reading them, frames that carry nothing, credit for data we never sent, calls it cancels while
 * too many cancelled handlers still run, streams it makes us reset, streams we must refuse) and ends the connection
 * with GW_ERR_ENHANCE_YOUR_CALM once it takes too much.
 * Each kind of work is one counter built from one of four shapes: a RateLimit (a token bucket with forgiven strikes,
 * for work that is fine at a modest rate), a CountLimit (a count that something of ours resets, for work that is fine
 * only while the peer keeps up), a WindowLimit (so many per fixed window, for work that is fine now and then) or an
 * allowance (CREDIT: earned by what we send, spent by what the peer sends). Adding a counter is one field, one method
 * and one line in its reset path. Knows nothing of frames, streams or sockets: the session tells it what happened, and
 * a violation throws.
 */
import { ProtocolError, ProtocolErrorCode } from '../wire/errors.js';

/** Pings the peer may send in a burst before the average rate (peerPingIntervalMs) is enforced. */
const PEER_PING_BURST = 16;
/** Pings beyond the permitted rate that are forgiven; the next one closes the connection (gRPC's MAX_PING_STRIKES). */
const MAX_PING_STRIKES = 2;
/** Solicited control replies (PING ACK, refusals) queued while the peer is not reading; more closes the connection. */
const MAX_REPLIES_WHILE_BLOCKED = 1000;

/**
 * Frames in a row that carry nothing: DATA with an empty payload that ends neither a message nor the stream, and
 * extension frames (this version ignores them). Our own sender never writes such a DATA (a test checks it); a newer
 * peer may send a few extension frames in a row, so a handful is allowed where Envoy allows one, and a flood of them
 * is still cut within 160 bytes. Any frame with a payload, or DATA that ends a message, starts the count again.
 */
const MAX_CONSECUTIVE_EMPTY_FRAMES = 16;
/**
 * The peer's CREDIT frames answer what we send (HTTP/2's CVE-2019-9511/9517 class; Envoy allows
 * 5 + 2 x (streams + 10 x DATA frames sent)): an allowance that starts at CREDIT_ALLOWANCE_START, grows by
 * CREDIT_PER_DATA_FRAME per DATA frame we write and CREDIT_PER_STREAM per stream opened either way, and is held to
 * CREDIT_ALLOWANCE_MAX. Each CREDIT received spends one; one without allowance left closes the connection. A
 * gridwire receiver sends at most about three per DATA frame (the stream's bytes, its messages, the connection), batched
 * to far fewer (one per half window), so an honest peer never comes near it; the cap bounds the burst a long
 * connection could save up.
 */
const CREDIT_ALLOWANCE_START = 100;
const CREDIT_PER_DATA_FRAME = 4;
const CREDIT_PER_STREAM = 4;
const CREDIT_ALLOWANCE_MAX = 10_000;
/** The window of the reset and refusal counters: Netty's Rapid Reset default is 200 resets per 30 s. */
export const FLOOD_WINDOW_MS = 30_000;
/**
 * Resets per window by default (maxResetsPer30s): Netty's 200, or twice maxConcurrentStreams when that is more. Counted:
 * resets we send for what the peer sent (MadeYouReset), and the peer's cancels of calls whose handlers still run once
 * maxConcurrentStreams such cancelled handlers are already running (stream-acceptor.ts: cancels within that pool are
 * not counted, so an honest peer that cancels at any rate never trips it unless our handlers ignore their AbortSignal).
 */
export function defaultMaxResets(maxConcurrentStreams: number): number {
  return Math.max(200, 2 * maxConcurrentStreams);
}
/**
 * Refused OPENs per window: Node's maxSessionRejectedStreams (100), or maxConcurrentStreams when that is more. A
 * gridwire opener queues at the peer's limit, and a stream it cancels leaves our count of its open streams when its
 * RESET arrives (the handler, still running, moves to the cancelled pool), so an honest peer is refused only when it
 * opens more than the limit it was told, or when its OPEN crossed our GOAWAY: at most about a limit's worth.
 */
function maxRefusals(maxConcurrentStreams: number): number {
  return Math.max(100, maxConcurrentStreams);
}

function calm(message: string): ProtocolError {
  return new ProtocolError(ProtocolErrorCode.ENHANCE_YOUR_CALM, message);
}

/**
 * Work allowed at one per `intervalMs` on average, in bursts of `burst`: a token bucket that starts full. Each event
 * beyond the rate is a strike; the one after `maxStrikes` strikes is a violation. A bucket that has refilled
 * completely forgives old strikes: the peer has behaved for a while.
 */
export class RateLimit {
  private tokens: number;
  private refilledAt = 0;
  private strikes = 0;

  constructor(
    private readonly intervalMs: number,
    private readonly burst: number,
    private readonly maxStrikes: number,
  ) {
    this.tokens = burst;
  }

  /** Charges one event; false when it is a violation. */
  charge(now: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + (now - this.refilledAt) / this.intervalMs);
    this.refilledAt = now;
    if (this.tokens >= this.burst) this.strikes = 0;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    return ++this.strikes <= this.maxStrikes;
  }
}

/** Work allowed `limit` times until something of ours resets the count. */
export class CountLimit {
  private count = 0;

  constructor(readonly limit: number) {}

  /** Charges one event; false when it is a violation. */
  charge(): boolean {
    return ++this.count <= this.limit;
  }

  reset(): void {
    this.count = 0;
  }
}

/**
 * Work allowed `limit` times per window of `windowMs`: a window starts with the first event after the last one ended
 * (grpc-java's and Netty's Rapid Reset counter).
 */
export class WindowLimit {
  private count = 0;
  private windowStart = -Infinity;

  constructor(
    readonly limit: number,
    private readonly windowMs: number,
  ) {}

  /** Charges one event; false when it is a violation. */
  charge(now: number): boolean {
    if (now - this.windowStart >= this.windowMs) {
      this.windowStart = now;
      this.count = 0;
    }
    return ++this.count <= this.limit;
  }
}

export interface PeerGuardOptions {
  /** See SessionOptions.peerPingIntervalMs; 0 allows any rate. */
  peerPingIntervalMs: number;
  /** See SessionOptions.maxConcurrentStreams: the refusal limit follows it. */
  maxConcurrentStreams: number;
  /** See SessionOptions.maxResetsPer30s; 0 allows any number. */
  maxResetsPer30s: number;
}

/** The counters of one connection's peer. Each method throws a ProtocolError (ENHANCE_YOUR_CALM) on a violation. */
export class PeerGuard {
  private readonly pings: RateLimit | undefined;
  /**
   * Replies the peer solicits (PING ACK, refusals) are written even while the transport asks us to wait, so that
   * control never queues behind data; a peer that keeps soliciting them without reading (CVE-2019-9512, the ping
   * flood) would grow that buffer forever. Past MAX_REPLIES_WHILE_BLOCKED replies without a drain, it is cut off.
   */
  private readonly repliesWhileBlocked = new CountLimit(MAX_REPLIES_WHILE_BLOCKED);

  /** Frames in a row that carried nothing (MAX_CONSECUTIVE_EMPTY_FRAMES). */
  private emptyFrames = 0;
  /** CREDIT frames the peer may still send, as of the last one (CREDIT_ALLOWANCE_START...). */
  private creditAllowance = CREDIT_ALLOWANCE_START;
  /** The outbox's count of DATA frames written, as of the last CREDIT; streams opened since: what CREDIT earned. */
  private dataFramesSeen = 0;
  private streamsOpened = 0;
  /**
   * Resets the peer caused, both ways (Rapid Reset beyond the cancelled pool, and MadeYouReset), per FLOOD_WINDOW_MS;
   * undefined: no limit.
   */
  private readonly resets: WindowLimit | undefined;
  private peerCancels = 0;
  private provokedResets = 0;
  /** The peer's OPENs we refused, per FLOOD_WINDOW_MS. */
  private readonly refusals: WindowLimit;

  constructor(private readonly options: PeerGuardOptions) {
    const interval = options.peerPingIntervalMs;
    this.pings = interval === 0 ? undefined : new RateLimit(interval, PEER_PING_BURST, MAX_PING_STRIKES);
    this.resets = options.maxResetsPer30s === 0 ? undefined : new WindowLimit(options.maxResetsPer30s, FLOOD_WINDOW_MS);
    this.refusals = new WindowLimit(maxRefusals(options.maxConcurrentStreams), FLOOD_WINDOW_MS);
  }

  /** The peer sent a PING (not an ACK): the third one beyond the permitted rate ends the connection. */
  pingReceived(): void {
    if (this.pings === undefined || this.pings.charge(performance.now())) return;
    throw calm(
      `too many pings: more than one per ${this.options.peerPingIntervalMs} ms on average (bursts of ${PEER_PING_BURST}) after ${MAX_PING_STRIKES} strikes`,
    );
  }

  /** We are about to queue a reply the peer asked for (`what`: PING, RESET); counted only while it is not reading. */
  replySolicited(what: string, transportBlocked: boolean): void {
    if (!transportBlocked || this.repliesWhileBlocked.charge()) return;
    throw calm(`the peer solicited more than ${MAX_REPLIES_WHILE_BLOCKED} ${what} replies without reading them`);
  }

  /** The transport took everything we queued: the peer is reading again. */
  transportDrained(): void {
    this.repliesWhileBlocked.reset();
  }

  // ---------------------------------------------------------------- floods (the session reads, these count)

  /** A frame that carries something arrived (a payload, or DATA that ends a message): empty frames count afresh. */
  frameWithPayload(): void {
    this.emptyFrames = 0;
  }

  /** A frame that carries nothing arrived (`what`: empty DATA, an extension frame): too many in a row end it. */
  emptyFrameReceived(what: string): void {
    if (++this.emptyFrames <= MAX_CONSECUTIVE_EMPTY_FRAMES) return;
    throw calm(
      `empty frame flood: more than ${MAX_CONSECUTIVE_EMPTY_FRAMES} frames in a row carried nothing (the last: ${what}); empty DATA that ends neither a message nor the stream, and extension frames, are allowed ${MAX_CONSECUTIVE_EMPTY_FRAMES} in a row`,
    );
  }

  /** We wrote a DATA frame: the peer may answer it with CREDIT. The one thing counted on the write path. */
  /** A stream was opened, by either side: the peer may raise its windows with CREDIT. */
  streamOpened(): void {
    this.streamsOpened++;
  }

  /**
   * The peer sent a CREDIT frame: it spends one of the allowance our DATA frames (`dataFramesWritten`, the outbox's
   * running count) and streams earned.
   */
  creditReceived(dataFramesWritten: number): void {
    const newDataFrames = dataFramesWritten - this.dataFramesSeen;
    let allowance = this.creditAllowance + newDataFrames * CREDIT_PER_DATA_FRAME + this.streamsOpened * CREDIT_PER_STREAM;
    this.dataFramesSeen = dataFramesWritten;
    this.streamsOpened = 0;
    if (allowance > CREDIT_ALLOWANCE_MAX) allowance = CREDIT_ALLOWANCE_MAX;
    if (allowance > 0) {
      this.creditAllowance = allowance - 1;
      return;
    }
    throw calm(
      `CREDIT flood: more CREDIT frames than what we sent can explain (at most ${CREDIT_ALLOWANCE_START}, plus ${CREDIT_PER_DATA_FRAME} per DATA frame we wrote and ${CREDIT_PER_STREAM} per stream opened, held to ${CREDIT_ALLOWANCE_MAX} ahead)`,
    );
  }

  /**
   * The peer reset a stream it opened while the handler still ran and maxConcurrentStreams such cancelled handlers
   * already run (Rapid Reset, CVE-2023-44487); the acceptor does not report cancels that fit in that pool.
   */
  peerCancelled(): void {
    this.peerCancels++;
    this.chargeReset();
  }

  /** We are about to reset a stream because of what the peer sent on it (MadeYouReset, CVE-2025-8671). */
  resetProvoked(): void {
    this.provokedResets++;
    this.chargeReset();
  }

  /** We are about to refuse one of the peer's OPENs (over maxConcurrentStreams, or while shutting down). */
  streamRefused(): void {
    if (this.refusals.charge(performance.now())) return;
    throw calm(
      `refused stream flood: more than ${this.refusals.limit} of the peer's OPENs refused in ${FLOOD_WINDOW_MS / 1000} s (over maxConcurrentStreams of ${this.options.maxConcurrentStreams}, or while shutting down); a gridwire opener waits for a free slot instead`,
    );
  }

  private chargeReset(): void {
    const resets = this.resets;
    if (resets === undefined || resets.charge(performance.now())) return;
    throw calm(
      `reset flood: more than ${resets.limit} stream resets in ${FLOOD_WINDOW_MS / 1000} s (maxResetsPer30s): on this connection the peer cancelled ${this.peerCancels} calls while ${this.options.maxConcurrentStreams} cancelled handlers still ran (Rapid Reset) and made us reset ${this.provokedResets} streams for what it sent on them (MadeYouReset)`,
    );
  }
}
