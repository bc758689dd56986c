/**
 * Everything a session sends, and when. Frames are queued in a FrameWriter and leave in one vectored write per flush;
 * a flush runs at the end of the tick that queued them (or at once past EAGER_FLUSH_BYTES): first what was queued
 * since the last one (control frames and small messages written at once), then what the scheduler lets out of the
 * streams' queues, small messages first (its latency class), then bulk data round-robin, within a budget per
 * event-loop turn (TURN_WRITE_BUDGET_BYTES, what the transport still holds counted in). Stream data is held back
 * while the transport asks us to wait, so a small frame never waits behind more than that budget of our own bulk data.
 * The outbox is the only owner of the connection's send credit: a stream writes DATA through writeData, which spends
 * it, and only the peer's CREDIT on stream 0 (addCredit) adds to it.
 *
 * While the transport asks us to wait, only frames that must not queue behind data (control frames, END, RESET,
 * OPEN) are still added, and each one but OPEN counts: past maxBlockedWriteFrames frames or maxBlockedWriteBytes bytes
 * before the transport drains, the peer is soliciting work it never reads (CVE-2019-9512/9514/9517), and the outbox
 * tells the session (onBlockedOverflow) and drops what follows; it never throws into the stream or handler that
 * wrote. Our OPENs are not counted: our application opens them, within the peer's MAX_CONCURRENT_STREAMS, and a burst
 * of calls while the peer is slow is no attack (each OPEN written through beginFrame). A write-stall watch (write-stall.ts) tells the session when the transport makes no progress at all.
 * Knows nothing of what frames mean, of stream lifecycles or of the peer's behaviour.
 */
import type { Transport } from '../transport/transport.js';
import { DEFAULT_LIMITS, Flag, FRAME_HEADER_BYTES, FrameType, MAX_WINDOW, MIN_DATA_FRAME_BYTES } from '../wire/constants.js';
import { StreamScheduler } from './scheduler.js';
import { dataFloorFor } from './send-queue.js';
import type { Stream, StreamOutput } from './stream.js';
import { WriteStallWatch } from './write-stall.js';
import { FrameWriter } from './writer.js';

export interface OutboxLimits {
  readonly maxBlockedWriteFrames: number;
  readonly maxBlockedWriteBytes: number;
  readonly writeStallTimeoutMs: number;
}

/** What the outbox reports to the session; each one means the connection must fail. */
export interface OutboxEvents {
  /**
   * Too much was queued while the transport asked us to wait. Called from inside whatever wrote the frame (a stream,
   * a handler): the session must fail the connection later (a microtask), not from within this call.
   */
  onBlockedOverflow(message: string): void;
  /** The transport made no write progress for writeStallTimeoutMs (called from a timer). */
  onWriteStall(message: string): void;
}

/**
 * Stream data handed to the transport per event-loop turn, what the transport still holds counted in: one turn never
 * writes more without yielding to I/O, and a small frame written now waits behind at most this much of our own bulk
 * data in the transport's buffer (bulk is held back while it holds more: a write past its high-water mark waits for
 * 'drain'). 256 KiB: four bulk frames, as much as the read side handles per turn (options.ts DEFAULT_READ_BUDGET_BYTES),
 * ~80 µs of loopback copying; 1 MiB put a ~300 µs floor under a reply's wait beside a download.
 */
export const TURN_WRITE_BUDGET_BYTES = 256 * 1024;
/**
 * Once this much is queued, write at once instead of at the end of the tick. With 64 calls in flight, waiting for
 * the whole batch made the two processes take turns; writing every ~25 small calls lets the peer start on the first
 * part while we encode the rest (bench, c=64: 145k calls/s never eager, 224k at 1 KiB, 284k at 2 KiB, 196k at 4 KiB).
 */
const EAGER_FLUSH_BYTES = 2048;

export class Outbox implements StreamOutput {
  private readonly writer = new FrameWriter();
  private readonly scheduler = new StreamScheduler();
  private flushScheduled = false;
  /** Stream data pumped in this event-loop turn (TURN_WRITE_BUDGET_BYTES); reset by a setImmediate once a turn pumps. */
  private turnBytes = 0;
  private turnEndScheduled = false;
  /** Set while a flush pumps the streams: their frames join that flush instead of starting another. */
  private flushing = false;
  /** The transport asked us to wait (a write returned false) and has not drained yet. */
  private blocked = false;
  /** The connection is closed: nothing more is written. */
  private stopped = false;
  /** Connection credit the peer has granted and we have not spent on DATA. */
  private sendCredit = 0;
  /** DATA frames written so far (it only grows): what the peer's CREDIT frames may answer (peer-guard.ts). */
  dataFramesWritten = 0;
  /** Bytes handed to the transport so far (stats). */
  bytesWritten = 0;
  private maxFrameBytes = DEFAULT_LIMITS.maxFrameBytes;
  /** Smallest DATA frame that is not the rest of its item (send-queue.ts), from the peer's HELLO windows. */
  private floor = MIN_DATA_FRAME_BYTES;
  /** Frames and bytes queued since the transport asked us to wait; reset when it drains. */
  private blockedFrames = 0;
  private blockedBytes = 0;
  /** Those passed their limit: the session has been told, and frames are dropped until it closes. */
  private overflowed = false;
  private readonly stallWatch: WriteStallWatch;

  constructor(
    private readonly transport: Transport,
    private readonly limits: OutboxLimits,
    private readonly events: OutboxEvents,
    /** The parity of our own stream ids (1: we dial, odd ids; 0: we accept, even ids). */
    private readonly ourStreamParity = 0,
  ) {
    this.stallWatch = new WriteStallWatch(limits.writeStallTimeoutMs, () => transport.writableLength, this.stalled);
  }

  // ---------------------------------------------------------------- what a stream sees (StreamOutput)

  /** False while the transport asks us to wait: streams then queue instead of writing directly. */
  get writable(): boolean {
    return !this.blocked;
  }

  get connectionCredit(): number {
    return this.sendCredit;
  }

  get dataAllowance(): number {
    return this.sendCredit < this.maxFrameBytes ? this.sendCredit : this.maxFrameBytes;
  }

  get dataFloor(): number {
    return this.floor;
  }

  writeData(flags: number, streamId: number, payload: Uint8Array): void {
    this.sendCredit -= payload.length;
    this.dataFramesWritten++;
    this.writeFrame(FrameType.DATA, flags, streamId, payload);
  }

  /** Queues a frame that spends no connection credit; it leaves with this tick's write, or at once past 2 KiB queued. */
  writeFrame(type: number, flags: number, streamId: number, payload?: Uint8Array): void {
    if (this.stopped) return;
    if (this.blocked && this.peerDriven(type, flags, streamId) && this.countBlocked(payload)) return;
    this.writer.frame(type, flags, streamId, payload);
    if (this.writer.size >= EAGER_FLUSH_BYTES && !this.flushing) this.flush();
    else this.scheduleFlush();
  }

  wake(stream: Stream): void {
    if (this.scheduler.add(stream)) this.scheduleFlush();
  }

  // ---------------------------------------------------------------- what the session drives

  /** Largest frame payload the peer accepts (from its HELLO; the protocol default before). */
  get peerMaxFrameBytes(): number {
    return this.maxFrameBytes;
  }

  /**
   * The peer's HELLO arrived: its connection window is our first send credit, its frame limit bounds every frame, and
   * a window it announced below MIN_DATA_FRAME_BYTES lowers the data floor to it (so a small window cannot deadlock).
   */
  start(peer: { connectionWindow: number; maxFrameBytes: number; initialStreamWindow: number }): void {
    this.sendCredit = peer.connectionWindow;
    this.maxFrameBytes = peer.maxFrameBytes;
    this.floor = Math.min(dataFloorFor(peer.connectionWindow), dataFloorFor(peer.initialStreamWindow));
  }

  /** The peer's CREDIT on stream 0; false if it would push the window past 2^31-1 (a connection error). */
  addCredit(increment: number): boolean {
    if (this.sendCredit + increment > MAX_WINDOW) return false;
    this.sendCredit += increment;
    // every CREDIT wakes the parked streams, not only one reaching the floor: credit covering the rest of an item
    // lets it out (PROTOCOL.md §6), and a stream that still may not write parks again. A peer granting a byte at a
    // time gets nothing written, and may send only so many CREDITs (its allowance in peer-guard.ts).
    if (this.sendCredit > 0) {
      this.scheduler.unpark();
      this.scheduleFlush();
    }
    return true;
  }

  /** Queues a frame without scheduling a flush: it leaves with the next flush() or writeRemaining(). */
  queueFrame(type: number, flags: number, streamId: number, payload: Uint8Array): void {
    this.writer.frame(type, flags, streamId, payload);
  }

  /**
   * Writes a frame header and reserves `length` payload bytes right after it, for the caller to fill in `target` at
   * the returned offset before anything else is queued (OPEN is encoded in place this way).
   */
  beginFrame(type: number, flags: number, streamId: number, length: number): number {
    const at = this.writer.beginFrame(type, flags, streamId, length);
    this.scheduleFlush();
    return at;
  }

  /** The buffer that beginFrame's offsets point into. */
  get target(): Uint8Array {
    return this.writer.target;
  }

  /**
   * Writes what is queued now: the frames queued since the last flush (control frames, small messages written at
   * once), then what the scheduler lets out (small messages first, then bulk) within this turn's budget.
   */
  flush(): void {
    if (this.stopped) return;
    this.flushing = true;
    if (!this.blocked && this.scheduler.hasReady) this.pumpStreams();
    this.flushing = false;
    if (this.writer.size === 0) return;
    this.bytesWritten += this.writer.size;
    if (!this.transport.write(this.writer.take()) && !this.blocked) {
      this.blocked = true;
      this.stallWatch.blocked();
    }
  }

  /** The transport took everything: stream data may flow again, and the count of frames queued meanwhile restarts. */
  drained(): void {
    this.blocked = false;
    this.blockedFrames = 0;
    this.blockedBytes = 0;
    this.stallWatch.drained();
    this.scheduleFlush();
  }

  /** The connection is ending: what is queued is written now, whether or not the transport asked us to wait. */
  writeRemaining(): void {
    if (this.writer.size === 0) return;
    this.bytesWritten += this.writer.size;
    this.transport.write(this.writer.take());
  }

  /** Lets go of the write slab of an idle connection (no-op while frames are queued); the next frame takes a new one. */
  releaseIdle(): void {
    this.writer.release();
  }

  /** Forgets every stream waiting for its turn or for credit: the session failed them all. */
  dropScheduled(): void {
    this.scheduler.clear();
  }

  /** The transport is closed: nothing more is written. */
  stop(): void {
    this.stopped = true;
    this.stallWatch.stop();
  }

  /** Counts a frame queued while blocked; true when it must be dropped (the limits have been passed). */
  /**
   * Whether a frame answers something the peer did, so that it counts while the transport is blocked: anything on the
   * peer's streams (RESETs, ENDs, CREDITs its calls provoke), PING ACKs and connection CREDIT. What our own side
   * started (frames on our streams: our cancels, our requests' ENDs; our PINGs and GOAWAY) is bounded by our own
   * application and never counted: more than maxBlockedWriteFrames of our own cancels while the peer is slow must not
   * close the connection on ourselves.
   */
  private peerDriven(type: number, flags: number, streamId: number): boolean {
    if (streamId !== 0) return (streamId & 1) !== this.ourStreamParity;
    return type === FrameType.CREDIT || (type === FrameType.PING && (flags & Flag.ACK) !== 0);
  }

  private countBlocked(payload: Uint8Array | undefined): boolean {
    if (this.overflowed) return true;
    this.countBlockedBytes(FRAME_HEADER_BYTES + (payload === undefined ? 0 : payload.length));
    return this.overflowed;
  }

  private countBlockedBytes(bytes: number): void {
    const frames = ++this.blockedFrames;
    this.blockedBytes += bytes;
    if (this.overflowed || (frames <= this.limits.maxBlockedWriteFrames && this.blockedBytes <= this.limits.maxBlockedWriteBytes)) return;
    this.overflowed = true;
    this.events.onBlockedOverflow(
      `the peer made us queue ${frames} frames (${this.blockedBytes} bytes) while not reading what we sent (limits: maxBlockedWriteFrames ${this.limits.maxBlockedWriteFrames}, maxBlockedWriteBytes ${this.limits.maxBlockedWriteBytes})`,
    );
  }

  private readonly stalled = (waitedMs: number): void => {
    this.events.onWriteStall(
      `no write progress for ${Math.round(waitedMs)} ms: the peer reads nothing we send (writeStallTimeoutMs ${this.limits.writeStallTimeoutMs}; 0 disables)`,
    );
  };

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // Scheduled from a socket callback, nextTick runs as soon as that callback returns: the frames it queued share one
    // write. Scheduled from a promise job, it runs once the microtask queue is empty, so calls made from resolved
    // promises in a burst share one write too. A response of an async handler leaves in the write after.
    process.nextTick(this.flushTick);
  }

  /** Lets the scheduled streams write within what is left of this turn's budget; the rest waits for the next turn. */
  private pumpStreams(): void {
    if (!this.turnEndScheduled) {
      this.turnEndScheduled = true;
      setImmediate(this.turnEnded); // after this turn's I/O: the next turn starts with a full budget
    }
    const budget = TURN_WRITE_BUDGET_BYTES - this.turnBytes - (this.transport.writableLength ?? 0);
    if (budget <= 0) return;
    const before = this.writer.size;
    this.scheduler.pump(budget, this.writer);
    this.turnBytes += this.writer.size - before;
  }

  private readonly turnEnded = (): void => {
    this.turnEndScheduled = false;
    this.turnBytes = 0;
    if (this.scheduler.hasReady) this.scheduleFlush();
  };

  private readonly flushTick = (): void => {
    this.flushScheduled = false;
    this.flush();
  };
}
