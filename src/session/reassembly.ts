/**
 * A message that arrives in several DATA frames: its fragments held (copied) against maxMessageBytes and the
 * connection's reassembly budget, the whole message once its last fragment arrives, and the credit of fragments held
 * back while the stream's owner has not yet consumed an earlier item. A stream creates one only when a message first
 * arrives in more than one frame (a unary call never does) and keeps it for its later messages. Knows nothing of the
 * stream's state or credit windows: the stream decides what to do when a fragment cannot be held.
 */
import { messageTooLargeMessage, reassemblyBudgetMessage } from './errors.js';

/** The connection's limits on what a peer may make us hold for messages not yet complete. */
export interface ReassemblyLimits {
  readonly maxMessageBytes: number;
  readonly maxReassemblyBytes: number;
  /** Adds (or, negative, removes) bytes held for partly received messages; false if the budget would be exceeded. */
  reserveReassembly(bytes: number): boolean;
}

export class Reassembly {
  private readonly parts: Uint8Array[] = [];
  /** Bytes of the message under way held so far. */
  private bytes = 0;
  /** Of those, bytes not yet credited to the peer, because an earlier item still waits to be consumed. */
  private uncredited = 0;

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
   * Holds a fragment that is not its message's last. Returns why it cannot be held (RESOURCE_EXHAUSTED: the message
   * or the connection's budget would grow too large), or undefined once it is held.
   */
  hold(fragment: Uint8Array): string | undefined {
    const n = fragment.length;
    const refusal = this.tooLarge(n);
    if (refusal !== undefined) return refusal;
    if (!this.limits.reserveReassembly(n)) return reassemblyBudgetMessage(this.limits.maxReassemblyBytes);
    // copy: a view would pin the whole socket chunk for as long as the message is incomplete
    this.parts.push(new Uint8Array(fragment)); // new Uint8Array copies; Buffer#slice would return a view
    this.bytes += n;
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
    this.parts.push(last);
    const message = Buffer.concat(this.parts, this.bytes + last.length);
    this.release();
    return message;
  }

  /** Lets go of what is held (the message completed, or its stream closed) and gives it back to the budget. */
  release(): void {
    if (this.bytes === 0) return;
    this.limits.reserveReassembly(-this.bytes);
    this.parts.length = 0;
    this.bytes = 0;
  }
}
