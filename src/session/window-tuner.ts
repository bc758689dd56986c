/**
 * Sizes the receive window of bulk bodies (a download's caller, an upload's handler) to what the connection needs,
 * instead of one fixed size: a window starts at `bulkWindow`, small enough that on a fast local link the bytes in
 * flight ahead of a small call's reply stay few, and grows while the measured throughput times the connection's
 * round-trip time says the window, not the network or the reader, limits the transfer (a long fat link: 1 Gbit/s x
 * 50 ms needs ~6 MiB). Growth is credit the receiver sends beyond the window it granted (CREDIT increments are the
 * protocol's own: nothing changes on the wire), up to `maxBulkWindow` per stream, and is reserved from the
 * connection's memory (at most `connectionWindow` of growth on all its streams together: more could not be in flight
 * anyway) and from the process's budget: a grown window is what a stopped reader makes us hold. Windows never shrink
 * (credit granted cannot be taken back); a stream's growth is given back when it closes. Knows nothing of frames or
 * of the rpc layer: a stream asks, at each batch of credit it returns, how much to add.
 *
 * The rule (ideas from HTTP/2's BDP estimation and QUIC's window auto-tuning; no code taken): every time a stream has
 * consumed a whole window, it has measured its delivery rate over that epoch. With the connection's smallest
 * round-trip time (PINGs: the keepalive's, the application's, and one this tuner asks for when a bulk body starts),
 * rate x RTT is what the pipe holds; the window must hold GROWTH_FACTOR times that, since credit comes back in
 * batches of half a window. Below that, the window doubles, unless the previous doubling bought less than
 * MIN_RATE_GAIN more rate (then the bottleneck is elsewhere: the reader, its CPU, the link). The smallest RTT, not the
 * last one, is what keeps this stable: a PING queued behind our own bulk data measures the queue, and a window sized
 * on that would grow the queue it measured.
 *
 * | state (per stream)   | event                                                  | next                          |
 * |----------------------|--------------------------------------------------------|-------------------------------|
 * | MEASURING            | a whole window consumed, needs more, budget allows     | SETTLING (window doubled)     |
 * | MEASURING            | a whole window consumed, enough (or no RTT yet)        | MEASURING (new epoch)         |
 * | SETTLING             | a whole window consumed (the credit took effect)       | MEASURING (new epoch)         |
 * | any                  | the stream closed                                      | released (growth given back)  |
 */

/** The window must hold this many times rate x RTT: credit returns at half a window, and a margin for the sender's turns. */
export const GROWTH_FACTOR = 2;
/** A doubling that raised the delivery rate by less than this was not what limited the transfer. */
const MIN_RATE_GAIN = 1.25;

export interface WindowTunerOptions {
  /** Where a bulk window starts (SessionOptions.bulkWindow). */
  readonly bulkWindow: number;
  /** How far one stream's window may grow (SessionOptions.maxBulkWindow); at or below bulkWindow: no tuning. */
  readonly maxBulkWindow: number;
}

/** Where the tuner learns the connection's round-trip time (keepalive.ts). */
export interface RttSource {
  /** The smallest round-trip time measured on the connection, in ms; undefined before the first PING came back. */
  readonly minRttMs: number | undefined;
  /** A bulk body starts: send a PING to measure the RTT, unless one was sent for it lately. */
  probeRtt(): void;
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
  /** The smallest RTT measured, in ms (undefined before the first). */
  readonly minRttMs: number | undefined;
}

export class WindowTuner {
  private streams = 0;
  private largestWindow = 0;
  private grownBytes = 0;
  private growths = 0;

  constructor(
    private readonly options: WindowTunerOptions,
    private readonly memory: WindowMemory,
    private readonly rtt: RttSource,
    /** The clock, in ms (tests give their own). */
    private readonly now: () => number = () => performance.now(),
  ) {}

  get stats(): WindowStats {
    return {
      streams: this.streams,
      largestWindowBytes: this.largestWindow,
      grownBytes: this.grownBytes,
      growths: this.growths,
      minRttMs: this.rtt.minRttMs,
    };
  }

  /** A bulk body starts arriving on a stream whose receive window is `window`: its tuning, or undefined if it has none. */
  track(window: number): TunedWindow | undefined {
    if (window > this.largestWindow) this.largestWindow = window;
    if (this.options.maxBulkWindow <= window) return undefined;
    this.streams++;
    this.rtt.probeRtt();
    return new TunedWindow(this, this.now());
  }

  /** @internal For TunedWindow: how many bytes to add to a window of `window` bytes that delivered `rate` bytes/ms. */
  growthFor(tuned: TunedWindow, rate: number, window: number): number {
    const rttMs = this.rtt.minRttMs;
    if (rttMs === undefined || rate * rttMs * GROWTH_FACTOR <= window) return 0;
    if (tuned.rateAtGrowth > 0 && rate < tuned.rateAtGrowth * MIN_RATE_GAIN) return 0;
    const extra = Math.min(window * 2, this.options.maxBulkWindow) - window;
    if (extra <= 0 || !this.memory.reserveWindowGrowth(extra)) return 0;
    this.grownBytes += extra;
    this.growths++;
    if (window + extra > this.largestWindow) this.largestWindow = window + extra;
    return extra;
  }

  /** @internal For TunedWindow: its stream closed, and its growth goes back. */
  released(grown: number): void {
    this.streams--;
    this.grownBytes -= grown;
    if (grown > 0) this.memory.releaseWindowGrowth(grown);
  }

  /** @internal */
  clock(): number {
    return this.now();
  }
}

/** One bulk stream's tuning: the epoch being measured and the growth it holds. */
export class TunedWindow {
  private epochStart: number;
  private epochBytes = 0;
  /** The epoch after a doubling straddles the old and the new window: it is not measured. */
  private settling = false;
  private grown = 0;
  private released = false;
  /** The delivery rate (bytes/ms) measured when the window last grew; 0 before. */
  rateAtGrowth = 0;

  constructor(
    private readonly tuner: WindowTuner,
    now: number,
  ) {
    this.epochStart = now;
  }

  /**
   * The stream returns `bytes` of credit (one batch) on a receive window of `window` bytes: how many bytes to add to
   * the window, and to this CREDIT (0 mostly).
   */
  credit(bytes: number, window: number): number {
    if (this.released) return 0;
    this.epochBytes += bytes;
    if (this.epochBytes < window) return 0;
    const now = this.tuner.clock();
    const elapsed = now - this.epochStart;
    const rate = elapsed > 0 ? this.epochBytes / elapsed : Infinity;
    this.epochStart = now;
    this.epochBytes = 0;
    if (this.settling) {
      this.settling = false;
      return 0;
    }
    const extra = this.tuner.growthFor(this, rate, window);
    if (extra > 0) {
      this.grown += extra;
      this.rateAtGrowth = rate;
      this.settling = true;
    }
    return extra;
  }

  /** The stream closed: its growth goes back to the budgets. Idempotent. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.tuner.released(this.grown);
    this.grown = 0;
  }
}
