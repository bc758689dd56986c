/**
 * A message that arrives in several DATA frames: its fragments held (copied) against maxMessageBytes and the
 * connection's memory (its reassembly budget and the process's), the whole message once its last fragment arrives, and
 * the credit of fragments held back while the stream's owner has not yet consumed an earlier item. A stream creates one
 * only when a message first arrives in more than one frame (a unary call never does) and keeps it for its later
 * messages. Knows nothing of the stream's state or credit windows: the stream decides what to do when a fragment
 * cannot be held.
 *
 * Fragments are copied into blocks, not kept one object each: a peer sending 1-byte fragments would otherwise pin a
 * ~200-byte object per byte (T-D9). A block holds max(fragment, the bytes held so far within 1-64 KiB), so small
 * fragments share blocks that grow geometrically, and 64 KiB frames get one block each, exactly as large (a 4 MiB
 * message in 64 KiB frames costs what one copy per fragment and one concat cost before: 0.75 ms either way; one
 * buffer grown by doubling took 1.65 ms). What is charged is each block's capacity plus BLOCK_OVERHEAD_BYTES.
 */
import { messageTooLargeMessage } from './errors.js';

/** Charged per block besides its capacity: the objects that hold it (an ArrayBuffer, its view, the list's slot). */
export const BLOCK_OVERHEAD_BYTES = 128;
const MIN_BLOCK_BYTES = 1024;
const MAX_BLOCK_BYTES = 64 * 1024;

/**
 * The most a message of `bytes` can be charged while it is held: its bytes, the unused end of its last block, and the
 * overhead of its blocks (geometric up to 64 KiB, then 64 KiB each). The default reassembly budget is made of it.
 */
export function reassemblyChargeOf(bytes: number): number {
  return bytes + MAX_BLOCK_BYTES + BLOCK_OVERHEAD_BYTES * (Math.ceil(bytes / MAX_BLOCK_BYTES) + 8);
}

/** Where the bytes held for partly received messages are reserved (the connection's memory). */
export interface ReassemblyMemory {
  /** Reserves bytes; returns why they cannot be held (RESOURCE_EXHAUSTED), or undefined once reserved. */
  reserveReassembly(bytes: number): string | undefined;
  releaseReassembly(bytes: number): void;
  /** True when the last refusal was a budget shared with other connections (not this peer's doing). */
  readonly lastRefusalShared: boolean;
}

/** The connection's limits on what a peer may make us hold for messages not yet complete. */
export interface ReassemblyLimits {
  readonly maxMessageBytes: number;
  readonly memory: ReassemblyMemory;
}

export class Reassembly {
  /** Filled blocks, as views of the bytes written in them. */
  private readonly blocks: Uint8Array[] = [];
  /** The block being filled, and how much of it is. */
  private block: Buffer | undefined;
  private blockUsed = 0;
  /** Bytes of the message under way held so far. */
  private bytes = 0;
  /** What the blocks are charged to the connection's memory. */
  private reserved = 0;
  /** Of the bytes held, those not yet credited to the peer, because an earlier item still waits to be consumed. */
  private uncredited = 0;
  /** The last refusal of hold() was the process-wide budget's (memory other connections hold), not this peer's limits. */
  refusedByShared = false;

  constructor(private readonly limits: ReassemblyLimits) {}

  /** True while a message is under way: some of its fragments are held. */
  get holding(): boolean {
    return this.bytes > 0;
  }

  /** Why the message under way cannot grow by `more` bytes (RESOURCE_EXHAUSTED), or undefined when it can. */
  tooLarge(more: number): string | undefined {
    const atLeast = this.bytes + more;
    const limit = this.limits.maxMessageBytes;
    return atLeast > limit ? messageTooLargeMessage(atLeast, limit) : undefined;
  }

  /**
   * Holds a (non-empty) fragment that is not its message's last. Returns why it cannot be held (RESOURCE_EXHAUSTED:
   * the message or a memory budget would grow too large), or undefined once it is held. After a refusal,
   * `refusedByShared` says whether the budget shared with other connections refused (the peer did not provoke it).
   */
  hold(fragment: Uint8Array): string | undefined {
    const n = fragment.length;
    const refusal = this.tooLarge(n);
    this.refusedByShared = false;
    if (refusal !== undefined) return refusal;
    // a fragment fills what is left of the current block before a new one starts: no block is closed half empty, so
    // what is charged stays within its bytes + one block + BLOCK_OVERHEAD_BYTES a block, whatever the fragment sizes
    let copied = 0;
    while (copied < n) {
      let block = this.block;
      if (block === undefined || block.length === this.blockUsed) {
        // geometric within 1-64 KiB, never past what the message may still grow by (tooLarge has passed n)
        const grown = Math.min(MAX_BLOCK_BYTES, Math.max(MIN_BLOCK_BYTES, this.bytes), this.limits.maxMessageBytes - this.bytes);
        const size = Math.max(n - copied, grown);
        const memoryRefusal = this.limits.memory.reserveReassembly(size + BLOCK_OVERHEAD_BYTES);
        if (memoryRefusal !== undefined) {
          // the stream fails (release() gives back what is held); whose budget refused decides whether the peer is blamed
          this.refusedByShared = this.limits.memory.lastRefusalShared;
          return memoryRefusal;
        }
        this.reserved += size + BLOCK_OVERHEAD_BYTES;
        if (block !== undefined) this.blocks.push(block);
        // its own ArrayBuffer: a pooled one would pin Node's shared 8 KiB slab for as long as the message is incomplete
        block = this.block = Buffer.allocUnsafeSlow(size);
        this.blockUsed = 0;
      }
      const take = Math.min(n - copied, block.length - this.blockUsed);
      block.set(copied === 0 && take === n ? fragment : fragment.subarray(copied, copied + take), this.blockUsed);
      this.blockUsed += take;
      this.bytes += take;
      copied += take;
    }
    return undefined;
  }

  /** The credit of `n` bytes just held goes back later, when takeUncredited() is called. */
  creditLater(n: number): void {
    this.uncredited += n;
  }

  /** The credit held back so far, for the caller to return now. */
  takeUncredited(): number {
    const n = this.uncredited;
    this.uncredited = 0;
    return n;
  }

  /** The message's last fragment arrived (tooLarge() has passed it): the whole message, and nothing held any more. */
  complete(last: Uint8Array): Uint8Array {
    const blocks = this.blocks;
    if (this.block !== undefined) blocks.push(this.block.subarray(0, this.blockUsed));
    blocks.push(last);
    const message = Buffer.concat(blocks, this.bytes + last.length);
    this.release();
    return message;
  }

  /** Lets go of what is held (the message completed, or its stream closed) and gives it back to the budgets. */
  release(): void {
    if (this.reserved === 0) return;
    this.limits.memory.releaseReassembly(this.reserved);
    this.reserved = 0;
    this.blocks.length = 0;
    this.block = undefined;
    this.blockUsed = 0;
    this.bytes = 0;
  }
}
