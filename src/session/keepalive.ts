/**
 * Liveness and round-trip time of one connection: PINGs we send (ours and the application's), their RTT, and the
 * keepalive that declares a silent peer dead. Knows nothing of streams or of the peer's pings (the PeerGuard counts
 * those); it learns of reads from the session and writes its PINGs through the outbox.
 *
 * Liveness is measured from the last byte read, never from the last ping sent (gRFC A8): a connection busy with data
 * needs no pings, and a peer that stops reading our pings is still alive if it keeps sending.
 *
 * | state   | event                                             | next                                     |
 * |---------|---------------------------------------------------|------------------------------------------|
 * | stopped | handshake done, keepaliveIntervalMs > 0           | idle                                     |
 * | idle    | interval tick, something was read since the last  | idle                                     |
 * | idle    | interval tick, nothing read for a whole interval  | probing (PING sent, write slab released) |
 * | probing | interval tick, something read since the PING      | idle (the next silent tick probes again) |
 * | probing | keepaliveTimeoutMs without a read, re-checked     | (session fails: unresponsive)            |
 * |         | after the turn's reads                            |                                          |
 * | any     | session closing                                   | stopped                                  |
 */
import { FrameType, Status } from '../wire/constants.js';
import { decodePing, encodePing } from '../wire/payloads.js';
import { ProtocolError, ProtocolErrorCode } from '../wire/errors.js';
import { SessionError } from './errors.js';

/** Pings awaiting a reply; more are refused rather than queued. */
const MAX_OUTSTANDING_PINGS = 16;
/** PING ACKs that answer no PING of ours allowed on one connection; one more closes it (ENHANCE_YOUR_CALM). */
export const MAX_STRAY_PING_ACKS = 16;

export interface KeepaliveOptions {
  /** See SessionOptions.keepaliveIntervalMs; 0 disables keepalive (ping() still works). */
  keepaliveIntervalMs: number;
  keepaliveTimeoutMs: number;
}

/** The part of the outbox keepalive writes through. */
export interface KeepaliveOutput {
  writeFrame(type: number, flags: number, streamId: number, payload?: Uint8Array): void;
  releaseIdle(): void;
}

/** The part of the session keepalive reports to. */
export interface KeepaliveHost {
  /** True once the session is closing: no more probes. */
  isClosing(): boolean;
  /** Nothing was read for interval + timeout: the connection is dead. */
  unresponsive(error: SessionError): void;
}

interface PendingPing {
  sentAt: number;
  resolve(rttMs: number): void;
  reject(error: Error): void;
}

export class Keepalive {
  /** PING ACKs received that answered no PING of ours. */
  private strayAcks = 0;
  /** Counts reads; keepalive compares it with what it saw last ("heard from the peer since?") and never resets it. */
  private reads = 0;
  private readsAtTick = 0;
  private readsAtProbe = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Armed while a keepalive PING waits for any byte from the peer. */
  private probeTimer: NodeJS.Timeout | undefined;
  private readonly pings = new Map<bigint, PendingPing>();
  private pingCounter = 0n;
  private lastRttMs: number | undefined;
  /** False until the handshake is done: a PING asked for before waits, since a peer being admitted may get only GOAWAY. */
  private started = false;

  constructor(
    private readonly options: KeepaliveOptions,
    private readonly output: KeepaliveOutput,
    private readonly host: KeepaliveHost,
  ) {}

  /** Round-trip time of the last answered ping (ours or a keepalive's), in ms. */
  get rttMs(): number | undefined {
    return this.lastRttMs;
  }

  /** The session read bytes from the peer: it is alive. */
  noteRead(): void {
    this.reads++;
  }

  /** Sends a PING and resolves with its round-trip time; at most MAX_OUTSTANDING_PINGS wait at once. */
  ping(): Promise<number> {
    if (this.pings.size >= MAX_OUTSTANDING_PINGS) {
      return Promise.reject(new SessionError(Status.RESOURCE_EXHAUSTED, `${MAX_OUTSTANDING_PINGS} pings already await a reply`));
    }
    const opaque = ++this.pingCounter;
    return new Promise<number>((resolve, reject) => {
      this.pings.set(opaque, { sentAt: performance.now(), resolve, reject });
      if (this.started) this.output.writeFrame(FrameType.PING, 0, 0, encodePing(opaque));
    });
  }

  /** A PING ACK arrived: settles the ping it answers (none if we gave up on it). */
  ackReceived(payload: Uint8Array): void {
    const opaque = decodePing(payload);
    const pending = this.pings.get(opaque);
    if (pending === undefined) {
      // an answer to nothing we asked: an honest peer sends none, each one is work for nothing
      if (++this.strayAcks > MAX_STRAY_PING_ACKS) {
        throw new ProtocolError(ProtocolErrorCode.ENHANCE_YOUR_CALM, `PING ACK flood: more than ${MAX_STRAY_PING_ACKS} PING ACKs that answer no PING of ours`);
      }
      return;
    }
    this.pings.delete(opaque);
    this.lastRttMs = performance.now() - pending.sentAt;
    pending.resolve(this.lastRttMs);
  }

  /** The handshake is done: pings asked for meanwhile leave now; from now on a silent interval sends a PING. */
  start(): void {
    this.started = true;
    for (const [opaque, ping] of this.pings) {
      ping.sentAt = performance.now();
      this.output.writeFrame(FrameType.PING, 0, 0, encodePing(opaque));
    }
    const interval = this.options.keepaliveIntervalMs;
    if (interval === 0) return;
    this.timer = setInterval(this.tick, interval);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    clearTimeout(this.probeTimer);
    this.timer = this.probeTimer = undefined;
  }

  /** The session closed: every ping still waiting fails with UNAVAILABLE. */
  rejectPings(reason: string): void {
    for (const ping of this.pings.values()) ping.reject(new SessionError(Status.UNAVAILABLE, reason));
    this.pings.clear();
  }

  private readonly tick = (): void => {
    if (this.probeTimer !== undefined) {
      if (this.reads === this.readsAtProbe) return; // still waiting for an answer
      clearTimeout(this.probeTimer); // answered: the next silent interval sends the next probe
      this.probeTimer = undefined;
    }
    if (this.reads !== this.readsAtTick) {
      this.readsAtTick = this.reads;
      return;
    }
    // a whole interval without a byte from the peer: the connection is idle, so its write slab (64 KiB, resident
    // once written) is dropped; an idle mesh of many connections then costs ~20 KiB each, not ~90 (bench connrss)
    this.output.releaseIdle();
    if (this.host.isClosing()) return;
    this.ping().catch(() => undefined); // the answer only matters as bytes read; loss is reported by the probe timer
    const timeout = this.options.keepaliveTimeoutMs;
    const readsAtProbe = (this.readsAtProbe = this.reads);
    const probe = setTimeout(() => {
      // Timers run before the poll phase reads sockets: after a stall of our own event loop the answer may be waiting
      // unread, so look once more after this turn's reads (setImmediate runs after the poll phase).
      setImmediate(() => {
        if (this.probeTimer === probe) this.probeTimer = undefined;
        if (this.reads !== readsAtProbe || this.host.isClosing()) return;
        const silentMs = this.options.keepaliveIntervalMs + timeout;
        this.host.unresponsive(
          new SessionError(Status.UNAVAILABLE, `the peer is unresponsive: nothing received for over ${silentMs} ms (keepalive)`),
        );
      });
    }, timeout);
    probe.unref();
    this.probeTimer = probe;
  };
}
