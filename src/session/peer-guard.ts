/**
 * Counts the work a peer can make us do without asking anything of it in return (pings we must answer, replies it
 * solicits while not reading them) and ends the connection with GW_ERR_ENHANCE_YOUR_CALM once it takes too much.
 * Each kind of work is one counter built from one of two shapes: a RateLimit (a token bucket with forgiven strikes,
 * for work that is fine at a modest rate) or a CountLimit (a count that something of ours resets, for work that is
 * fine only while the peer keeps up). Adding a counter is one field, one method and one line in its reset path.
 * Knows nothing of frames, streams or sockets: the session tells it what happened, and a violation throws.
 */
import { ProtocolError, ProtocolErrorCode } from '../wire/errors.js';

/** Pings the peer may send in a burst before the average rate (peerPingIntervalMs) is enforced. */
const PEER_PING_BURST = 16;
/** Pings beyond the permitted rate that are forgiven; the next one closes the connection (gRPC's MAX_PING_STRIKES). */
const MAX_PING_STRIKES = 2;
/** Solicited control replies (PING ACK, refusals) queued while the peer is not reading; more closes the connection. */
const MAX_REPLIES_WHILE_BLOCKED = 1000;

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

export interface PeerGuardOptions {
  /** See SessionOptions.peerPingIntervalMs; 0 allows any rate. */
  peerPingIntervalMs: number;
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

  constructor(private readonly options: PeerGuardOptions) {
    const interval = options.peerPingIntervalMs;
    this.pings = interval === 0 ? undefined : new RateLimit(interval, PEER_PING_BURST, MAX_PING_STRIKES);
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
}
