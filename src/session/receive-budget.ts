/**
 * What the peer may still make us hold on this connection: the connection receive window (checked on every DATA, given
 * back in CREDIT frames of a quarter window) and the reassembly budget shared by every stream's partly received
 * message. The counterpart of the outbox's send credit. Knows nothing of a stream's own windows (stream.ts has them).
 */
import { FrameType } from '../wire/constants.js';
import { ProtocolError, ProtocolErrorCode } from '../wire/errors.js';
import { encodeCredit } from '../wire/payloads.js';

export interface ReceiveBudgetOptions {
  connectionWindow: number;
  maxReassemblyBytes: number;
}

/** The part of the outbox the budget writes CREDIT through. */
export interface ReceiveBudgetOutput {
  writeFrame(type: number, flags: number, streamId: number, payload?: Uint8Array): void;
}

export class ReceiveBudget {
  /** Connection credit we have granted and the peer has not used. */
  private window: number;
  /** Bytes handled since the last connection CREDIT. */
  private unacked = 0;
  /** Bytes held in partly received messages, across all streams. */
  private reassemblyBytes = 0;

  constructor(
    private readonly options: ReceiveBudgetOptions,
    private readonly output: ReceiveBudgetOutput,
  ) {
    this.window = options.connectionWindow;
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
    if (this.unacked >= this.options.connectionWindow >>> 2) {
      this.window += this.unacked;
      this.output.writeFrame(FrameType.CREDIT, 0, 0, encodeCredit(this.unacked));
      this.unacked = 0;
    }
  }

  /** Adds (or, negative, removes) bytes held for partly received messages; false if the budget would be exceeded. */
  reserveReassembly(bytes: number): boolean {
    if (bytes > 0 && this.reassemblyBytes + bytes > this.options.maxReassemblyBytes) return false;
    this.reassemblyBytes += bytes;
    return true;
  }
}
