/**
 * Sizes the receive window of bulk bodies (a download's caller, an upload's handler) to what the connection needs,
 * instead of one fixed size: a window starts at `bulkWindow`, small enough that on a fast local link the bytes in
 * flight ahead of a small call's reply stay few, doubles while it holds less than what the path carries in
 * GROWTH_FACTOR (3) credit loops (a long fat link: 1 Gbit/s x 50 ms carries ~6 MiB per loop), and shrinks back once it
 * holds far more than that. Growth is credit the receiver sends beyond the window it granted, shrinking is credit it
 * keeps back (CREDIT increments are the protocol's own: nothing changes on the wire). Growth goes up to
 * `maxBulkWindow` per stream and is reserved from the connection's memory (at most the larger of `connectionWindow` and
 * `maxBulkWindow` of growth on all its streams together: the per-peer budget) and from the process's budget: a grown
 * window is what a stopped reader makes us hold, so a shrink keeps it reserved until its credit is actually kept back
 * (from the batches the reader's consumption returns: until then the peer may still fill it), and it is all given
 * back when the stream closes. The connection window (receive-budget.ts) grows and shrinks by the same amounts, at the
 * same moments, and never past 2^31-1 (a growth that would take it there is refused: a peer closes on such credit). Knows nothing of frames or of the
 * rpc layer: a stream reports each DATA frame's arrival and each time its reader asks for more and finds nothing, and
 * asks, at each batch of credit it returns, by how much to change the window.
 *
 * What the window must hold is the delivery rate times the time credit takes to come back as data (the idea of
 * QUIC's window auto-tuning and of HTTP/2's BDP estimation; no code taken). All is measured on the connection's own
 * bulk streams, no PING needed:
 * - the path's credit loop: after a CREDIT is sent, the first byte beyond what the earlier credit allowed can only
 *   have been sent once that CREDIT arrived: the time from the CREDIT to that byte is a round trip plus the sender's
 *   turn, plus however long that byte queued behind earlier data (in the sender's socket, at the path's bottleneck, in
 *   our own socket while we were busy). The smallest loop the connection has seen is the path's: later ones are
 *   inflated by the queue the window itself fills, and growing on them would grow the window without end. One CREDIT
 *   is timed at a time; the one that carries a growth is not (its first byte leaves ahead of the queue it allows).
 * - an epoch: the time the reader takes to consume a whole window. A window consumed in less than GROWTH_FACTOR path
 *   loops holds less than GROWTH_FACTOR x rate x loop (rate = window / epoch): the window is, or is about to be, what
 *   limits the transfer, and doubles. When the link, the sender or TCP's own ramp is the limit the epoch is long and
 *   the window stays: no growth on rates the path does not carry, and no shrinking while TCP ramps up.
 * - the reader's wait: from when it asked for more and found nothing (the inbox tells the stream) to the next frame.
 *   A window is grown only if the reader spent at least MIN_WAITED_SHARE of the epoch waiting: a reader busy all the
 *   time is the limit itself (on loopback, a reader taking every frame from a queue the window keeps full), and more
 *   window would only queue more ahead of small replies.
 * - the queue: a window is grown only while the loops of the last two epochs stay under QUEUED_LOOP_FACTOR times the
 *   path's. Longer ones waited behind a queue (a link or a sender slower than the window: its loop is the time its
 *   queue takes to drain), which the window already fills. The epoch after a growth is judged on loops timed before it
 *   too, so a slow sender's window may double twice, never more.
 * A loop under MIN_GROWTH_LOOP_MS never grows a window (loopback, a LAN: bulkWindow per loop is already 64 MiB/s), and
 * takes back at once what the first loops grew: a stream's first milliseconds on loopback (the event loop still busy
 * starting up, JIT, a loaded machine) can time loops of over MIN_GROWTH_LOOP_MS, and a window grown on them stayed grown (unary p99
 * beside a download on loopback 3.9x idle instead of 1.8x).
 * A window consumed in more than SHRINK_FACTOR (8) loops holds more than 8 x rate x loop, over two and a half times
 * the GROWTH_FACTOR (3) loops' worth it grows to (the reader or the sender slowed down for good): after QUIET_EPOCHS
 * such epochs in a row it gives back an eighth of itself, and again at each such epoch after, down to where it
 * started, so a window grown for a fast phase does not keep a large queue ahead of small replies (the credit is kept
 * back from as many batches as it takes, and each byte stays reserved until its credit is).
 *
 * | state (per stream) | event (each at the end of an epoch: a whole window consumed)          | next                |
 * |--------------------|-----------------------------------------------------------------------|---------------------|
 * | NO_LOOP            | no credit loop measured on the connection yet                         | NO_LOOP             |
 * | NO_LOOP            | a loop was measured (by this stream or another of the connection)     | TUNING              |
 * | TUNING             | loop < MIN_GROWTH_LOOP_MS (a local path), the window grown            | TUNING (all growth  |
 * |                    |                                                                       | to keep back)       |
 * | TUNING             | epoch < GROWTH_FACTOR x loop, loop >= MIN_GROWTH_LOOP_MS, the reader  | TUNING (doubled; so |
 * |                    | waited >= MIN_WAITED_SHARE of it, the recent loops < QUEUED_LOOP_     | is the connection   |
 * |                    | FACTOR x loop, nothing to keep back, below maxBulkWindow, budgets and | window)             |
 * |                    | the connection window's 2^31-1 allow                                  |                     |
 * | TUNING             | epoch < GROWTH_FACTOR x loop, but any of the rest fails               | TUNING              |
 * | TUNING             | epoch > SHRINK_FACTOR x loop for the QUIET_EPOCHS-th time in a row or | TUNING (an eighth   |
 * |                    | later, the window grown                                               | to keep back)       |
 * | any                | a batch of credit returned while some is to keep back                 | same (that much     |
 * |                    |                                                                       | kept back, and only |
 * |                    |                                                                       | then released)      |
 * | TUNING             | otherwise (the window holds what the path needs: 3-8 loops' worth)    | TUNING (quiet count |
 * |                    |                                                                       | reset)              |
 * | any                | the stream closed                                                     | released (growth    |
 * |                    |                                                                       | and what was to keep|
 * |                    |                                                                       | back given back)    |
 */

/**
 * The window must hold this many times rate x path loop: TCP itself keeps up to twice the path's bandwidth-delay
 * product in flight (BBR's congestion window gain of 2; CUBIC filling a bottleneck buffer of one BDP), and the sender's
 * socket, its turn and our credit batches need a margin beyond that. At 2, a 1 Gbit/s x 50 ms path's window stopped at
 * 16 MiB, and the sender waited for credit most of the time (~700 Mbit/s; 900-1000 at 3, test/net/long-fat-link).
 */
export const GROWTH_FACTOR = 3;
/**
 * A window consumed in more than this many path loops holds more than 8 x rate x loop, over two and a half times the
 * GROWTH_FACTOR loops' worth it grows to: it may shrink.
 */
export const SHRINK_FACTOR = 8;
/**
 * The reader must have waited for data at least this share of an epoch for its window to grow: a reader busy for more
 * than three quarters of its time is about to be the limit itself, whatever the window.
 */
export const MIN_WAITED_SHARE = 0.25;
/**
 * A window grows only while the credit loops of the last two epochs stay under this many times the path's: a loop
 * longer than that waited behind a queue (in the sender's socket, at the bottleneck), which the window already fills:
 * the link or the sender is the limit, and more window would only lengthen that queue ahead of small replies.
 */
export const QUEUED_LOOP_FACTOR = 1.5;
/** Epochs in a row consumed in more than SHRINK_FACTOR loops before a grown window shrinks by an eighth. */
export const QUIET_EPOCHS = 4;
/**
 * A credit loop shorter than this never grows a window: on loopback or a LAN the starting window already lets through
 * bulkWindow per loop (256 KiB / 4 ms = 64 MiB/s at the least, far more on loopback's ~0.1 ms), and what a grown
 * window adds there is bytes queued ahead of every small reply. 4, not 1: on a loaded loopback (the sender's event loop
 * busy with the transfer and the calls beside it) loops stay at 1-3 ms, and growth on them put a small call's p99
 * beside a download at 2.5x base's (unary-under-bulk, issue 14; test/session/bulk-window "a loaded loopback"). Long
 * links (issue 14: 50-200 ms) are far above it; a path of 1-4 ms keeps 256 KiB per loop (over 500 Mbit/s at 4 ms).
 */
export const MIN_GROWTH_LOOP_MS = 4;

/**
 * A bulk body's credit goes back in batches of a quarter of its window (stream.ts), but never more than this at once:
 * a grown window's credit held back in one batch is window the path cannot use (a quarter of 16 MiB is 4 MiB, a third
 * of what 1 Gbit/s x 50 ms holds in flight behind a full bottleneck queue). Sixteen CREDITs per 16 MiB window.
 */
export const MAX_BULK_CREDIT_BATCH = 1024 * 1024;

/** When a bulk body of window `window` returns credit: a quarter of it, at most MAX_BULK_CREDIT_BATCH. */
export function bulkCreditBatch(window: number): number {
  const quarter = window >>> 2;
  return quarter < MAX_BULK_CREDIT_BATCH ? quarter : MAX_BULK_CREDIT_BATCH;
}

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

/** The connection window, which grows and shrinks with the streams' windows (receive-budget.ts). */
export interface GrowingWindow {
  /** Whether the window may grow by `bytes` (it never goes past 2^31-1, MAX_WINDOW: the peer would close on it). */
  canGrow(bytes: number): boolean;
  grow(bytes: number): void;
  shrink(bytes: number): void;
}

/** What the tuner has done on one connection, for tests and debugging. */
export interface WindowStats {
  /** Bulk streams whose window is tuned now. */
  readonly streams: number;
  /** The largest receive window any bulk stream on the connection has had. */
  readonly largestWindowBytes: number;
  /** The window of the bulk stream whose epoch ended last (0 before any did): with one transfer, its window now. */
  readonly windowBytes: number;
  /**
   * Window growth held now by open streams (reserved from the memory budgets): what their windows hold beyond where
   * they started, credit of a shrink not yet kept back included (the peer may still fill it).
   */
  readonly grownBytes: number;
  /** Doublings so far. */
  readonly growths: number;
  /** Shrinks (by an eighth) so far. */
  readonly shrinks: number;
  /** The path's credit loop (the smallest measured on the connection), in ms; undefined before any. */
  readonly pathLoopMs: number | undefined;
  /** The delivery rate over the last epoch that ended, bytes per second (0 before any). */
  readonly rateBytesPerSecond: number;
  /** The path loop when a window last grew, in ms (undefined before the first growth). */
  readonly loopMs: number | undefined;
  /** The share of its epoch the reader spent waiting for data when a window last grew. */
  readonly waitedShare: number | undefined;
}

export class WindowTuner {
  private streams = 0;
  private largestWindow = 0;
  private lastWindow = 0;
  private lastRate = 0;
  private grownBytes = 0;
  private growths = 0;
  private shrinks = 0;
  private lastLoopMs: number | undefined;
  private lastWaitedShare: number | undefined;
  /** The smallest credit loop measured on any bulk stream of the connection (ms): the path's. */
  pathLoop = Infinity;

  constructor(
    private readonly options: WindowTunerOptions,
    private readonly memory: WindowMemory,
    /** The connection window: grown and shrunk with the streams' windows (receive-budget.ts); none in some tests. */
    private readonly connection: GrowingWindow | undefined,
    /** The clock, in ms (tests give their own). */
    readonly now: () => number = () => performance.now(),
  ) {}

  get stats(): WindowStats {
    return {
      streams: this.streams,
      largestWindowBytes: this.largestWindow,
      windowBytes: this.lastWindow,
      grownBytes: this.grownBytes,
      growths: this.growths,
      shrinks: this.shrinks,
      pathLoopMs: this.pathLoop === Infinity ? undefined : this.pathLoop,
      rateBytesPerSecond: this.lastRate,
      loopMs: this.lastLoopMs,
      waitedShare: this.lastWaitedShare,
    };
  }

  /** A bulk body starts arriving on a stream whose receive window is `window`: its tuning, or undefined if it has none. */
  track(window: number): TunedWindow | undefined {
    if (window > this.largestWindow) this.largestWindow = window;
    if (this.options.maxBulkWindow <= window) return undefined;
    this.streams++;
    return new TunedWindow(this, this.now());
  }

  /** @internal For TunedWindow: an epoch ended on a window of `window` bytes, consumed at `rate` bytes per ms. */
  epochEnded(window: number, rate: number): void {
    this.lastWindow = window;
    this.lastRate = rate * 1000;
  }

  /** @internal For TunedWindow: how many bytes to add to a window of `window` bytes (doubling it), within the budgets. */
  growthFor(window: number, waitedShare: number): number {
    const extra = Math.min(window * 2, this.options.maxBulkWindow) - window;
    if (extra <= 0) return 0;
    if (this.connection !== undefined && !this.connection.canGrow(extra)) return 0;
    if (!this.memory.reserveWindowGrowth(extra)) return 0;
    this.connection?.grow(extra);
    this.grownBytes += extra;
    this.growths++;
    this.lastLoopMs = this.pathLoop;
    this.lastWaitedShare = waitedShare;
    if (window + extra > this.largestWindow) this.largestWindow = window + extra;
    return extra;
  }

  /** @internal For TunedWindow: it decided to shrink (the credit is kept back, and released, later: released()). */
  shrank(): void {
    this.shrinks++;
  }

  /** @internal For TunedWindow: `bytes` of its window no longer held (credit kept back, or its stream closed). */
  released(bytes: number): void {
    if (bytes <= 0) return;
    this.grownBytes -= bytes;
    this.memory.releaseWindowGrowth(bytes);
    this.connection?.shrink(bytes);
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
  /** Epochs in a row consumed in more than SHRINK_FACTOR path loops. */
  private quietEpochs = 0;
  /** When the CREDIT whose loop is being timed was sent (ms); -1: none pending. */
  private pendingAt = -1;
  /** Credit granted since (and with) that CREDIT: a DATA frame leaving less credit than this used it. */
  private creditSincePending = 0;
  /** The smallest credit loop sampled in this epoch and the one before (ms). */
  private loopThisEpoch = Infinity;
  private loopLastEpoch = Infinity;
  /** Since when the reader has been waiting for data, having asked for more and found nothing (ms); -1: it is not. */
  private waitingSince = -1;
  /** How long the reader waited for data in this epoch (ms). */
  private waitedThisEpoch = 0;
  /** Bytes of window beyond where it started, not to be kept back (reserved). */
  private grown = 0;
  /**
   * Credit still to keep back: the window shrank by that much more than the batches since have kept. Still reserved:
   * until a batch keeps it back the peer holds that credit, and a reader that stopped may be made to hold its bytes.
   */
  private keptBack = 0;
  private released = false;

  constructor(
    private readonly tuner: WindowTuner,
    now: number,
  ) {
    this.epochStart = now;
  }

  /** A DATA frame arrived on the stream, leaving the peer `creditLeft` bytes of stream credit (stream.recvWindow). */
  dataArrived(creditLeft: number): void {
    // the first byte the pending CREDIT allowed: it could not leave the sender before that CREDIT arrived
    const credited = this.pendingAt >= 0 && creditLeft < this.creditSincePending;
    if (this.waitingSince < 0 && !credited) return;
    const now = this.tuner.now();
    if (this.waitingSince >= 0) {
      this.waitedThisEpoch += now - this.waitingSince;
      this.waitingSince = -1;
    }
    if (credited) {
      const loop = now - this.pendingAt;
      if (loop < this.loopThisEpoch) this.loopThisEpoch = loop;
      if (loop < this.tuner.pathLoop) this.tuner.pathLoop = loop;
      this.pendingAt = -1;
    }
  }

  /** The reader asked for more and nothing was there: it waits for data from now on. */
  readerWaits(): void {
    this.waitingSince = this.tuner.now();
  }

  /**
   * The stream returns `bytes` of credit (one batch) on a receive window of `window` bytes: by how much to change the
   * window, and this CREDIT: 0 mostly, more to grow, less (never below -bytes) to shrink.
   */
  credit(bytes: number, window: number): number {
    if (this.released) return 0;
    this.epochBytes += bytes;
    let change = this.epochBytes < window ? 0 : this.endOfEpoch(window);
    if (change <= 0) {
      if (this.keptBack > 0) {
        // a shrink is credit kept back, from as many batches as it takes; only now is that much no longer held
        change = this.keptBack < bytes ? -this.keptBack : -bytes;
        this.keptBack += change;
        this.tuner.released(-change);
      }
      if (this.pendingAt < 0) {
        // (the CREDIT that grows the window is not timed: its first byte goes out ahead of the queue the growth lets
        // the sender make, which the next CREDIT's loop shows)
        this.pendingAt = this.tuner.now();
        this.creditSincePending = 0;
      }
    }
    this.creditSincePending += bytes + change;
    return change;
  }

  /** The stream closed: its growth, and what was still to keep back, go back to the budgets. Idempotent. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.tuner.released(this.grown + this.keptBack);
    this.tuner.closed();
    this.grown = 0;
    this.keptBack = 0;
  }

  /** A whole window was consumed: measures the epoch and decides the change (the table in the module header). */
  private endOfEpoch(window: number): number {
    const now = this.tuner.now();
    const elapsed = now - this.epochStart;
    const waitedShare = elapsed > 0 ? this.waitedThisEpoch / elapsed : 1;
    const recentLoop = this.loopThisEpoch < this.loopLastEpoch ? this.loopThisEpoch : this.loopLastEpoch;
    this.loopLastEpoch = this.loopThisEpoch;
    this.loopThisEpoch = Infinity;
    this.waitedThisEpoch = 0;
    this.epochStart = now;
    this.epochBytes = 0;
    const change = this.decide(window, elapsed, waitedShare, recentLoop);
    this.tuner.epochEnded(window + change - this.keptBack, elapsed > 0 ? window / elapsed : 0);
    return change;
  }

  private decide(window: number, elapsed: number, waitedShare: number, recentLoop: number): number {
    const loop = this.tuner.pathLoop;
    if (loop === Infinity) return 0; // NO_LOOP
    if (loop < MIN_GROWTH_LOOP_MS) {
      // a local path after all: growth made on the first loops (a stream's first milliseconds, our event loop still
      // busy starting up, can time a loopback loop at over 1 ms) is kept back at once, from the next batches
      if (this.grown > 0) this.giveBack(this.grown);
      return 0;
    }
    if (elapsed < GROWTH_FACTOR * loop) {
      this.quietEpochs = 0;
      if (waitedShare < MIN_WAITED_SHARE || recentLoop > QUEUED_LOOP_FACTOR * loop || this.keptBack > 0) return 0;
      const extra = this.tuner.growthFor(window, waitedShare);
      this.grown += extra;
      if (extra > 0) {
        // this epoch's loops were timed before the growth; the next epoch is judged on them and its own, the one after
        // on loops timed after it only (credit() times the CREDIT after the one that carries it)
        this.loopLastEpoch = this.loopThisEpoch;
        this.loopThisEpoch = Infinity;
      }
      return extra;
    }
    if (elapsed <= SHRINK_FACTOR * loop) {
      this.quietEpochs = 0;
      return 0;
    }
    // QUIET_EPOCHS in a row, and each one after: an eighth of the window given back (the credit kept back from the
    // next batches, the growth reserved until it is)
    if (this.grown === 0 || ++this.quietEpochs < QUIET_EPOCHS) return 0;
    this.giveBack(Math.min(window >>> 3, this.grown));
    return 0;
  }

  /**
   * Shrinks the window by `bytes` of its growth: that credit is kept back from the next batches (credit()), and only
   * as it is does it stop being reserved: until then the peer may still send it.
   */
  private giveBack(bytes: number): void {
    this.grown -= bytes;
    this.keptBack += bytes;
    this.tuner.shrank();
  }
}
