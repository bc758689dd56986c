/**
 * Everything a session sends, and when. Frames are queued in a FrameWriter and leave in one vectored write per flush;
 * a flush runs at the end of the tick that queued them (or at once past EAGER_FLUSH_BYTES), lets the streams' queued
 * data out through the fair scheduler within a per-flush budget, and holds stream data back while the transport asks
 * us to wait. The outbox is the only owner of the connection's send credit: a stream writes DATA through writeData,
 * which spends it, and only the peer's CREDIT on stream 0 (addCredit) adds to it.
 * Knows nothing of what frames mean, of stream lifecycles or of the peer's behaviour.
 */
import type { Transport } from '../transport/transport.js';
import { DEFAULT_LIMITS, FrameType, MAX_WINDOW } from '../wire/constants.js';
import { StreamScheduler } from './scheduler.js';
import type { Stream, StreamOutput } from './stream.js';
import { FrameWriter } from './writer.js';

/** Upper bound on one flush's scheduled stream data, so one tick never writes without yielding. */
const FLUSH_BUDGET_BYTES = 1024 * 1024;
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
  /** Set while a flush pumps the streams: their frames join that flush instead of starting another. */
  private flushing = false;
  /** The transport asked us to wait (a write returned false) and has not drained yet. */
  private blocked = false;
  /** The connection is closed: nothing more is written. */
  private stopped = false;
  /** Connection credit the peer has granted and we have not spent on DATA. */
  private sendCredit = 0;
  private maxFrameBytes = DEFAULT_LIMITS.maxFrameBytes;

  constructor(private readonly transport: Transport) {}

  // ---------------------------------------------------------------- what a stream sees (StreamOutput)

  /** False while the transport asks us to wait: streams then queue instead of writing directly. */
  get writable(): boolean {
    return !this.blocked;
  }

  get dataAllowance(): number {
    return this.sendCredit < this.maxFrameBytes ? this.sendCredit : this.maxFrameBytes;
  }

  writeData(flags: number, streamId: number, payload: Uint8Array): void {
    this.sendCredit -= payload.length;
    this.writeFrame(FrameType.DATA, flags, streamId, payload);
  }

  /** Queues a frame that spends no connection credit; it leaves with this tick's write, or at once past 2 KiB queued. */
  writeFrame(type: number, flags: number, streamId: number, payload?: Uint8Array): void {
    if (this.stopped) return;
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

  /** The peer's HELLO arrived: its connection window is our first send credit, its frame limit bounds every frame. */
  start(connectionCredit: number, peerMaxFrameBytes: number): void {
    this.sendCredit = connectionCredit;
    this.maxFrameBytes = peerMaxFrameBytes;
  }

  /** The peer's CREDIT on stream 0; false if it would push the window past 2^31-1 (a connection error). */
  addCredit(increment: number): boolean {
    if (this.sendCredit + increment > MAX_WINDOW) return false;
    this.sendCredit += increment;
    this.scheduler.unpark();
    this.scheduleFlush();
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

  /** Writes what is queued now, after as much stream data as the budget and the transport allow. */
  flush(): void {
    if (this.stopped) return;
    this.flushing = true;
    // stream data after the control frames already queued; yield to I/O when one flush's budget is spent
    if (!this.blocked && this.scheduler.pump(FLUSH_BUDGET_BYTES, this.writer)) setImmediate(this.flushLater);
    this.flushing = false;
    if (this.writer.size === 0) return;
    if (!this.transport.write(this.writer.take())) this.blocked = true;
  }

  /** The transport took everything: stream data may flow again. */
  drained(): void {
    this.blocked = false;
    this.scheduleFlush();
  }

  /** The connection is ending: what is queued is written now, whether or not the transport asked us to wait. */
  writeRemaining(): void {
    if (this.writer.size > 0) this.transport.write(this.writer.take());
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
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // Scheduled from a socket callback, nextTick runs as soon as that callback returns: the frames it queued share one
    // write. Scheduled from a promise job, it runs once the microtask queue is empty, so calls made from resolved
    // promises in a burst share one write too. A response of an async handler leaves in the write after.
    process.nextTick(this.flushTick);
  }

  private readonly flushLater = (): void => this.scheduleFlush();

  private readonly flushTick = (): void => {
    this.flushScheduled = false;
    this.flush();
  };
}
