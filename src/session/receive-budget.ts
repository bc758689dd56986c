/**
 * What the peer may still send us on this connection: the connection receive window (checked on every DATA, given
 * back in CREDIT frames of a quarter window). The counterpart of the outbox's send credit. What the peer makes us hold
 * is connection-memory.ts's; a stream's own windows are stream.ts's.
 *
 * The window starts at `connectionWindow` and grows and shrinks with the bulk streams' windows (window-tuner.ts): a
 * stream whose window grows by n bytes grows the connection window by n too (a CREDIT on stream 0 at once), so that a
 * long fat link's transfer is not held to `connectionWindow` in flight (with credit returned a quarter at a time, 16 MiB
 * lets ~12 MiB through: less than 1 Gbit/s x 50 ms fills once TCP queues at the bottleneck), and other streams keep the
 * room they had. Shrinking keeps back credit from the next batches instead, and a growth while some is still to keep
 * back first cancels that much of it (only the rest is sent), so the credit the peer holds never runs above the largest
 * size the window has had. That size never passes MAX_WINDOW (2^31-1): the tuner asks canGrow first and leaves the
 * stream's window as it is (a peer closes with FLOW_CONTROL on credit past it; connectionWindow and maxBulkWindow may
 * each be up to 2^31-1, so their sum may not fit). The growth is the one the stream reserved from the memory budgets:
 * the connection window bounds bytes in transit (credit goes back on receipt), what is held is bounded per stream, so
 * it needs no reservation of its own.
 */
import { FrameType, MAX_WINDOW } from '../wire/constants.js';
import { ProtocolError, ProtocolErrorCode } from '../wire/errors.js';
import { encodeCredit } from '../wire/payloads.js';

export interface ReceiveBudgetOptions {
  connectionWindow: number;
}

/** The part of the outbox the budget writes CREDIT through. */
export interface ReceiveBudgetOutput {
  writeFrame(type: number, flags: number, streamId: number, payload?: Uint8Array): void;
}

export class ReceiveBudget {
  /** Connection credit we have granted and the peer has not used. */
  private window: number;
  /** The window's size now: connectionWindow plus the growth of bulk streams' windows. */
  private size: number;
  /** Bytes handled since the last connection CREDIT. */
  private unacked = 0;
  /** Credit still to keep back from the next batches: the window shrank by that much. */
  private keptBack = 0;

  constructor(
    options: ReceiveBudgetOptions,
    private readonly output: ReceiveBudgetOutput,
  ) {
    this.window = options.connectionWindow;
    this.size = options.connectionWindow;
  }

  /** A DATA frame of `bytes` arrived: it must fit the connection window (else a connection error). */
  takeData(bytes: number): void {
    if (bytes > this.window) {
      throw new ProtocolError(ProtocolErrorCode.FLOW_CONTROL, `DATA of ${bytes} bytes exceeds the connection credit of ${this.window}`);
    }
    this.window -= bytes;
  }

  /**
   * A DATA frame has been handled, whatever became of it (delivered, buffered for reassembly, which
   * maxReassemblyBytes bounds instead, or dropped with its failed stream): its bytes go back to the peer, batched.
   */
  giveBack(bytes: number): void {
    this.unacked += bytes;
    if (this.unacked >= this.size >>> 2) {
      const batch = this.unacked;
      this.unacked = 0;
      this.grant(batch);
    }
  }

  /** Whether the window may grow by `bytes`: never past MAX_WINDOW, which the peer would close on. */
  canGrow(bytes: number): boolean {
    return this.size + bytes <= MAX_WINDOW;
  }

  /**
   * A bulk stream's window grew by `bytes` (canGrow said it may): so does the connection's, at once (window-tuner.ts).
   * Credit still to keep back is cancelled first: the peer holds it already, and only the rest is sent.
   */
  grow(bytes: number): void {
    this.size += bytes;
    this.grant(bytes);
  }

  /** Grants the peer `bytes` of credit, less what is still to be kept back (that much is kept, the rest sent). */
  private grant(bytes: number): void {
    let increment = bytes;
    if (this.keptBack > 0) {
      const kept = this.keptBack < increment ? this.keptBack : increment;
      this.keptBack -= kept;
      increment -= kept;
      if (increment === 0) return;
    }
    this.window += increment;
    this.output.writeFrame(FrameType.CREDIT, 0, 0, encodeCredit(increment));
  }

  /** A bulk stream's window shrank by `bytes`, or it closed with them: the connection's shrinks back as credit is kept. */
  shrink(bytes: number): void {
    this.size -= bytes;
    this.keptBack += bytes;
  }
}
