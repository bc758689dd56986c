/**
 * What one connection's peer may make us hold in memory, beyond a frame in transit, and the process-wide budget it
 * shares with every other connection: bytes of partly received messages (maxReassemblyBytes), bytes queued to send
 * on streams while the peer's credit holds them back (maxQueuedSendBytes), and the growth of bulk receive windows
 * beyond bulkWindow (window-tuner.ts; at most the larger of connectionWindow and maxBulkWindow on all streams together:
 * one stream grown to the full, or several sharing that). A reservation must fit both the
 * connection's own limit and the process's MemoryBudget; a refusal comes back as the message a stream fails with
 * (RESOURCE_EXHAUSTED), naming the budget and how to raise it. Knows nothing of streams or frames: only bytes.
 */
import type { MemoryBudget } from './memory-budget.js';
import { reassemblyBudgetMessage } from './errors.js';

export interface ConnectionMemoryOptions {
  readonly maxReassemblyBytes: number;
  readonly maxQueuedSendBytes: number;
  /**
   * The larger of the two bounds the window growth of all bulk streams together (one stream grown to the full, or
   * several sharing that); the connection window grows with it (receive-budget.ts).
   */
  readonly connectionWindow: number;
  readonly maxBulkWindow?: number;
}

/** Why a stream failed whose queued bytes did not fit the connection's budget for them. */
export function queuedSendBudgetMessage(limitBytes: number): string {
  return `bytes queued to send on this connection, waiting for the peer's credit, would exceed the sender's maxQueuedSendBytes of ${limitBytes}; raise maxQueuedSendBytes (default: twice maxMessageBytes, at least 32 MiB) or send less at once to a slow peer`;
}

/** Why a stream failed whose bytes did not fit the process-wide budget shared by every connection. */
export function processBudgetMessage(limitBytes: number, what: string): string {
  return `${what} would exceed the process-wide memoryBudget of ${limitBytes} bytes, shared by all connections (default: a quarter of the V8 heap limit); raise memoryBudget (or the heap limit, --max-old-space-size)`;
}

export class ConnectionMemory {
  private reassemblyBytes = 0;
  private queuedSendBytes = 0;
  private windowGrowthBytes = 0;
  /** The connection is closed: everything went back to the process, and nothing more is reserved. */
  private closed = false;
  /**
   * The last refusal was the process-wide budget's, not one of this connection's limits: other connections used it,
   * so the peer of this one did not provoke it (a stream fails, but no reset is charged to this peer).
   */
  lastRefusalShared = false;

  /** What all bulk streams' windows may grow by together. */
  private readonly windowGrowthLimit: number;

  constructor(
    private readonly options: ConnectionMemoryOptions,
    private readonly process: MemoryBudget,
  ) {
    this.windowGrowthLimit = Math.max(options.connectionWindow, options.maxBulkWindow ?? 0);
  }

  /** Bytes held for partly received messages. Returns why they cannot be (RESOURCE_EXHAUSTED), or undefined. */
  reserveReassembly(bytes: number): string | undefined {
    if (this.reassemblyBytes + bytes > this.options.maxReassemblyBytes || this.closed) {
      this.lastRefusalShared = false;
      return reassemblyBudgetMessage(this.options.maxReassemblyBytes);
    }
    if (!this.process.tryReserve(bytes)) {
      this.lastRefusalShared = true;
      return processBudgetMessage(this.process.limitBytes, 'partly received messages');
    }
    this.reassemblyBytes += bytes;
    return undefined;
  }

  releaseReassembly(bytes: number): void {
    if (this.closed) return;
    this.reassemblyBytes -= bytes;
    this.process.release(bytes);
  }

  /** Bytes queued to send on a stream. Returns why they cannot be (RESOURCE_EXHAUSTED), or undefined. */
  reserveQueuedSend(bytes: number): string | undefined {
    if (this.queuedSendBytes + bytes > this.options.maxQueuedSendBytes || this.closed) {
      return queuedSendBudgetMessage(this.options.maxQueuedSendBytes);
    }
    if (!this.process.tryReserve(bytes)) return processBudgetMessage(this.process.limitBytes, 'bytes queued to send');
    this.queuedSendBytes += bytes;
    return undefined;
  }

  releaseQueuedSend(bytes: number): void {
    if (this.closed) return;
    this.queuedSendBytes -= bytes;
    this.process.release(bytes);
  }

  /** Bytes queued to send on this connection's streams now (reserved: of streams whose OPEN is written). */
  get queuedSendTotal(): number {
    return this.queuedSendBytes;
  }

  /**
   * Growth of a bulk stream's receive window (what a stopped reader would make us hold beyond bulkWindow). False,
   * reserving nothing, past the connection's share (the larger of connectionWindow and maxBulkWindow) or the process's
   * budget: the window stays as it is.
   */
  reserveWindowGrowth(bytes: number): boolean {
    if (this.closed || this.windowGrowthBytes + bytes > this.windowGrowthLimit || !this.process.tryReserve(bytes)) return false;
    this.windowGrowthBytes += bytes;
    return true;
  }

  releaseWindowGrowth(bytes: number): void {
    if (this.closed) return;
    this.windowGrowthBytes -= bytes;
    this.process.release(bytes);
  }

  /** Bytes this connection holds now (all kinds; window growth counts as held: the peer may fill it). */
  get heldBytes(): number {
    return this.reassemblyBytes + this.queuedSendBytes + this.windowGrowthBytes;
  }

  /** The connection closed: whatever it still holds goes back to the process budget, and later calls change nothing. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.process.release(this.reassemblyBytes + this.queuedSendBytes + this.windowGrowthBytes);
    this.reassemblyBytes = 0;
    this.queuedSendBytes = 0;
    this.windowGrowthBytes = 0;
  }
}
