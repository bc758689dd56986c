/**
 * What the peer may still send us on this connection: the connection receive window (checked on every DATA, given
 * back in CREDIT frames of a quarter window). The counterpart of the outbox's send credit. What the peer makes us hold
 * is connection-memory.ts's; a stream's own windows are stream.ts's.
 */
import { FrameType } from '../wire/constants.js';
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
  /** Bytes handled since the last connection CREDIT. */
  private unacked = 0;

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
}
