/**
 * Sizes the receive window of bulk bodies (a download's caller, an upload's handler) to what the connection needs,
 * instead of one fixed size: a window starts at `bulkWindow`, small enough that on a fast local link the bytes in
 * flight ahead of a small call's reply stay few, grows while the transfer shows that the window, not the reader, the
 * sender or the link, limits it (a long fat link: 1 Gbit/s x 50 ms needs ~6 MiB in flight), and shrinks back towards
 * `bulkWindow` once it no longer does. Growth is credit the receiver sends beyond the window it granted, shrinking is
 * credit it keeps back (CREDIT increments are the protocol's own: nothing changes on the wire). Growth goes up to
 * `maxBulkWindow` per stream and is reserved from the connection's memory (at most `connectionWindow` of growth on all
 * its streams together: more could not be in flight anyway) and from the process's budget: a grown window is what a
 * stopped reader makes us hold; it is given back as the window shrinks and when the stream closes. Knows nothing of
 * frames or of the rpc layer: a stream reports each DATA frame's arrival and each time its reader has caught up, and
 * asks, at each batch of credit it returns, by how much to change the window.
 *
 * What the window must hold is the delivery rate times the time credit takes to come back as data (ideas from HTTP/2's
 * BDP estimation and QUIC's window auto-tuning; no code taken). All is measured on the stream itself, no PING needed:
 * - the rate: each time the reader has consumed a whole window (an epoch), bytes / time;
 * - the credit loop: after a CREDIT is sent, the first byte beyond what the earlier credit allowed can only have been
 *   sent once that CREDIT arrived: the time from the CREDIT to that byte is a round trip plus the sender's turn, plus
 *   however long that byte queued behind earlier data;
 * - the reader's wait for it: from when the reader had consumed everything (or from the CREDIT, if later) to that
 *   byte; nothing when the reader was still busy with earlier data.
 * The loop alone would grow the window without end when the reader is the bottleneck (a fast local link): the byte
 * queues behind the window's own data, so the loop grows with the window. The wait tells the cases apart: when the
 * window limits the transfer the reader idles for most of a round trip at each CREDIT, and hardly before the frames
 * that follow in the same burst; when the reader is the limit it waits before every frame only as long as reading it
 * takes (the socket read, and a CREDIT written just before, fall between the reader catching up and the frame's
 * arrival); when the sender or the link is, it waits about as long before every frame. So what counts is the wait
 * before credited data beyond the wait before other frames: the window doubles when, at every CREDIT of the last two
 * epochs, that excess was at least 1/IDLE_SHARE of the time a window takes the reader (an eighth of its time over a
 * window's four CREDITs), and the window holds less than GROWTH_FACTOR x rate x loop, unless the previous doubling
 * raised the rate by less than MIN_RATE_GAIN (then something else is the limit). Smallest samples of two epochs: one
 * stall of our own event loop inflates one, not all. Once QUIET_EPOCHS epochs in a row show no such wait while the
 * reader was busy most of the time (it, not the window, is the limit again: a sender that was slow while warming up,
 * a burst of CPU contention that is over), the window gives back an eighth of itself, down to where it started: a
 * window grown by a passing cause does not keep a large queue ahead of small replies for the rest of the transfer.
 * A reader that mostly waits (the link or the sender is the limit: a long fat path) keeps its window: there the queue
 * is the path's, and giving back what it needs would cost throughput the reader's wait cannot show.
 *
 * | state (per stream) | event (each at the end of an epoch: a whole window consumed)       | next                  |
 * |--------------------|--------------------------------------------------------------------|-----------------------|
 * | MEASURING          | the reader idled at every CREDIT, rate x loop says grow, the last  | SETTLING (doubled)    |
 * |                    | doubling paid, the budget allows                                   |                       |
 * | MEASURING          | idled, but nothing more to gain (or no budget)                     | MEASURING             |
 * | MEASURING          | the QUIET_EPOCHS-th epoch in a row without idling for credit, the  | MEASURING (shrinks)   |
 * |                    | reader busy most of each, the window grown                         |                       |
 * | MEASURING          | otherwise                                                          | MEASURING             |
 * | SETTLING           | (the doubling took effect during it: not measured)                 | MEASURING             |
 * | any                | the stream closed                                                  | released              |
 */

/** The window must hold this many times rate x credit loop: the sender's turn and the credit batches need a margin. */
export const GROWTH_FACTOR = 2;
/** A doubling that raised the delivery rate by less than this was not what limited the transfer. */
const MIN_RATE_GAIN = 1.25;
/**
 * At each CREDIT (a quarter window, stream.ts) the reader must have idled, waiting for the credited data, for at least
 * 1/IDLE_SHARE of the time a window takes it: at 32, the four CREDITs of a window cost an eighth of its time or more.
 */
const IDLE_SHARE = 32;
/** Epochs in a row without the reader idling for credit before a grown window shrinks by an eighth. */
export const QUIET_EPOCHS = 4;
/**
 * A credit loop shorter than this never grows a window: on loopback or a LAN the starting window already lets through
 * bulkWindow per loop (256 KiB / 1 ms = 256 MiB/s at the least, far more on loopback's ~0.1 ms), and what a grown
 * window adds there is bytes queued ahead of every small reply (unary p99 beside a download on loopback: 1.97x idle at
 * 256 KiB, 2.46x with the window grown; docs/BENCHMARKS.md). Long links (issue 14: 50-200 ms) are far above it.
 */
export const MIN_GROWTH_LOOP_MS = 1;

export interface WindowTunerOptions {
  /** Where a bulk window starts (SessionOptions.bulkWindow). */
  readonly bulkWindow: number;
  /** How far one stream's window may grow (SessionOptions.maxBulkWindow); at or below the window: no tuning. */
  readonly maxBulkWindow: number;
}

/** Where growth is reserved (connection-memory.ts). */
export interface WindowMemory {
  /** Reserves `bytes` of window growth; false (nothing reserved) past the connection's or the process's budget. */
  reserveWindowGrowth(bytes: number): boolean;
  releaseWindowGrowth(bytes: number): void;
}

/** What the tuner has done on one connection, for tests and debugging. */
export interface WindowStats {
  /** Bulk streams whose window is tuned now. */
  readonly streams: number;
  /** The largest receive window any bulk stream on the connection has had. */
  readonly largestWindowBytes: number;
  /** Window growth held now by open streams (reserved from the memory budgets). */
  readonly grownBytes: number;
  /** Doublings so far. */
  readonly growths: number;
  /** Shrinks (by an eighth) so far. */
  readonly shrinks: number;
  /** The credit loop that last made a window grow, in ms (undefined before the first growth). */
  readonly loopMs: number | undefined;
  /** How long the reader had idled, waiting for credited data, when a window last grew, in ms. */
  readonly idleMs: number | undefined;
}

export class WindowTuner {
  private streams = 0;
  private largestWindow = 0;
  private grownBytes = 0;
  private growths = 0;
  private shrinks = 0;
  private lastLoopMs: number | undefined;
  private lastIdleMs: number | undefined;

  constructor(
    private readonly options: WindowTunerOptions,
    private readonly memory: WindowMemory,
    /** The clock, in ms (tests give their own). */
    readonly now: () => number = () => performance.now(),
  ) {}

  get stats(): WindowStats {
    return {
      streams: this.streams,
      largestWindowBytes: this.largestWindow,
      grownBytes: this.grownBytes,
      growths: this.growths,
      shrinks: this.shrinks,
      loopMs: this.lastLoopMs,
      idleMs: this.lastIdleMs,
    };
  }

  /** A bulk body starts arriving on a stream whose receive window is `window`: its tuning, or undefined if it has none. */
  track(window: number): TunedWindow | undefined {
    if (window > this.largestWindow) this.largestWindow = window;
    if (this.options.maxBulkWindow <= window) return undefined;
    this.streams++;
    return new TunedWindow(this, this.now());
  }

  /** @internal For TunedWindow: how many bytes to add to a window of `window` bytes, from its measurements. */
  growthFor(tuned: TunedWindow, rate: number, loopMs: number, idleMs: number, window: number): number {
    if (loopMs < MIN_GROWTH_LOOP_MS || rate * loopMs * GROWTH_FACTOR <= window) return 0;
    if (tuned.rateAtGrowth > 0 && rate < tuned.rateAtGrowth * MIN_RATE_GAIN) return 0;
    const extra = Math.min(window * 2, this.options.maxBulkWindow) - window;
    if (extra <= 0 || !this.memory.reserveWindowGrowth(extra)) return 0;
    this.grownBytes += extra;
    this.growths++;
    this.lastLoopMs = loopMs;
    this.lastIdleMs = idleMs;
    if (window + extra > this.largestWindow) this.largestWindow = window + extra;
    return extra;
  }

  /** @internal For TunedWindow: `bytes` of its growth given back (it shrank, or its stream closed). */
  gaveBack(bytes: number, shrink: boolean): void {
    if (shrink) this.shrinks++;
    this.grownBytes -= bytes;
    if (bytes > 0) this.memory.releaseWindowGrowth(bytes);
  }

  /** @internal For TunedWindow: its stream closed. */
  closed(): void {
    this.streams--;
  }
}

/** One bulk stream's tuning: the epoch being measured, the credit loop being timed, and the growth it holds. */
export class TunedWindow {
  private epochStart: number;
  private epochBytes = 0;
  /** The epoch after a doubling straddles the old and the new window: it is not measured. */
  private settling = false;
  /** Epochs in a row in which the reader did not idle for credit. */
  private quietEpochs = 0;
  /** When the CREDIT whose loop is being timed was sent (ms); -1: none pending. */
  private pendingAt = -1;
  /** Credit granted since (and with) that CREDIT: a DATA frame leaving less credit than this used it. */
  private creditSincePending = 0;
  /** When the reader last caught up (consumed everything delivered), ms. */
  private caughtUpAt = 0;
  /** The smallest credit loop and reader's wait sampled in this epoch and the one before (ms). */
  private loopThisEpoch = Infinity;
  private loopLastEpoch = Infinity;
  private idleThisEpoch = Infinity;
  private idleLastEpoch = Infinity;
  /** Over this epoch and the one before: frames that were not the first of a CREDIT's data, and the reader's total
   * wait before them (ms). */
  private otherFrames = 0;
  private otherWait = 0;
  private otherFramesLastEpoch = 0;
  private otherWaitLastEpoch = 0;
  /** The reader's wait before every frame of this epoch (ms): how much of it the reader spent waiting. */
  private waitedThisEpoch = 0;
  /** Bytes of window beyond where it started (reserved). */
  private grown = 0;
  private released = false;
  /** The delivery rate (bytes/ms) measured when the window last grew; 0 before, and after a shrink. */
  rateAtGrowth = 0;

  constructor(
    private readonly tuner: WindowTuner,
    now: number,
  ) {
    this.epochStart = now;
  }

  /**
   * A DATA frame arrived on the stream, leaving the peer `creditLeft` bytes of stream credit (stream.recvWindow);
   * `readerWaiting`: everything delivered before it had been consumed.
   */
  dataArrived(creditLeft: number, readerWaiting: boolean): void {
    if (this.pendingAt < 0 || creditLeft >= this.creditSincePending) {
      this.otherFrames++;
      if (!readerWaiting) return;
      const waited = this.tuner.now() - this.caughtUpAt;
      this.otherWait += waited;
      this.waitedThisEpoch += waited;
      return;
    }
    // the first byte the pending CREDIT allowed: it could not leave the sender before that CREDIT arrived
    const now = this.tuner.now();
    if (readerWaiting) this.waitedThisEpoch += now - this.caughtUpAt;
    const loop = now - this.pendingAt;
    const idle = readerWaiting ? now - (this.caughtUpAt > this.pendingAt ? this.caughtUpAt : this.pendingAt) : 0;
    if (loop < this.loopThisEpoch) this.loopThisEpoch = loop;
    if (idle < this.idleThisEpoch) this.idleThisEpoch = idle;
    this.pendingAt = -1;
  }

  /** The reader has consumed everything delivered on the stream: from now on it waits for data. */
  caughtUp(): void {
    this.caughtUpAt = this.tuner.now();
  }

  /**
   * The stream returns `bytes` of credit (one batch) on a receive window of `window` bytes: by how much to change the
   * window, and this CREDIT: 0 mostly, more to grow, less (never below -bytes) to shrink.
   */
  credit(bytes: number, window: number): number {
    if (this.released) return 0;
    const change = this.endOfEpoch(bytes, window);
    if (this.pendingAt < 0) {
      this.pendingAt = this.tuner.now();
      this.creditSincePending = 0;
    }
    this.creditSincePending += bytes + change;
    return change;
  }

  /** The stream closed: its growth goes back to the budgets. Idempotent. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.tuner.gaveBack(this.grown, false);
    this.tuner.closed();
    this.grown = 0;
  }

  /** Counts `bytes` consumed; once a whole window was, measures the epoch and decides the change. */
  private endOfEpoch(bytes: number, window: number): number {
    this.epochBytes += bytes;
    if (this.epochBytes < window) return 0;
    const now = this.tuner.now();
    const elapsed = now - this.epochStart;
    const rate = elapsed > 0 ? this.epochBytes / elapsed : Infinity;
    const loop = this.loopThisEpoch < this.loopLastEpoch ? this.loopThisEpoch : this.loopLastEpoch;
    const idle = this.idleThisEpoch < this.idleLastEpoch ? this.idleThisEpoch : this.idleLastEpoch;
    const waitedShare = elapsed > 0 ? this.waitedThisEpoch / elapsed : 0;
    this.waitedThisEpoch = 0;
    const others = this.otherFrames + this.otherFramesLastEpoch;
    const usualWait = others > 0 ? (this.otherWait + this.otherWaitLastEpoch) / others : 0;
    this.otherFramesLastEpoch = this.otherFrames;
    this.otherWaitLastEpoch = this.otherWait;
    this.otherFrames = 0;
    this.otherWait = 0;
    this.epochStart = now;
    this.epochBytes = 0;
    this.loopLastEpoch = this.loopThisEpoch;
    this.loopThisEpoch = Infinity;
    this.idleLastEpoch = this.idleThisEpoch;
    this.idleThisEpoch = Infinity;
    if (this.settling) {
      this.settling = false;
      return 0;
    }
    if (loop === Infinity) return 0; // no CREDIT's data has arrived yet
    // what the reader could have taken while it waited for credited data, beyond its usual wait for a frame
    if (rate * (idle - usualWait) * IDLE_SHARE < window) return this.quiet(bytes, window, waitedShare);
    this.quietEpochs = 0;
    const extra = this.tuner.growthFor(this, rate, loop, idle, window);
    if (extra > 0) {
      this.grown += extra;
      this.rateAtGrowth = rate;
      this.settling = true;
    }
    return extra;
  }

  /**
   * An epoch in which the reader did not wait for credit: after QUIET_EPOCHS in a row in which it was busy for most of
   * its time (`waitedShare` is the part it spent waiting), a grown window shrinks.
   */
  private quiet(bytes: number, window: number, waitedShare: number): number {
    if (waitedShare >= 0.5) this.quietEpochs = 0; // the path or the sender is the limit: the queue is not ours
    if (this.grown === 0 || ++this.quietEpochs < QUIET_EPOCHS) return 0;
    this.quietEpochs = 0;
    // an eighth of the window, never more than it grew, nor more than this batch of credit (kept back from it)
    const shrink = Math.min(window >>> 3, this.grown, bytes);
    this.grown -= shrink;
    this.rateAtGrowth = 0; // the next need may grow it again
    this.tuner.gaveBack(shrink, true);
    return -shrink;
  }
}
