/**
 * Picks the next frame to write, fairly between streams: round-robin, one frame per stream per turn, with a byte
 * budget per flush so a bulk sender cannot monopolise a tick. Streams waiting for connection credit are parked
 * until it arrives. Knows nothing of methods or codecs, nor of how frames reach the socket.
 *
 * A stream that closes while queued is not taken out at once (that would be a search per close); it is skipped when
 * its turn comes. While the transport asks us to wait, no turn comes: a peer that reads nothing and opens and cancels
 * calls at line rate would pile up closed streams here without end (each holding its stream object). So both lists
 * drop their closed streams whenever they have doubled since the last time: never more than twice the open streams
 * (plus COMPACT_MIN), at an amortised cost of one check per stream queued.
 */
import { WriteResult } from './send-queue.js';
import type { Stream } from './stream.js';

/** Below this many entries a list is never searched for closed streams. */
const COMPACT_MIN = 1024;

export class StreamScheduler {
  private ready: Stream[] = [];
  private head = 0;
  private waitingForConnectionCredit: Stream[] = [];
  /** When `ready` (from head) reaches this length, its closed streams are dropped. */
  private compactReadyAt = COMPACT_MIN;
  private compactWaitingAt = COMPACT_MIN;

  /** Streams queued or parked, closed ones not yet dropped included. */
  get size(): number {
    return this.ready.length - this.head + this.waitingForConnectionCredit.length;
  }

  /** Queues a stream that has frames to write; false if it was already queued (or parked). */
  add(stream: Stream): boolean {
    if (stream.scheduled) return false;
    stream.scheduled = true;
    this.ready.push(stream);
    if (this.ready.length - this.head >= this.compactReadyAt) {
      this.ready = openOnly(this.ready, this.head);
      this.head = 0;
      this.compactReadyAt = Math.max(COMPACT_MIN, 2 * this.ready.length);
    }
    return true;
  }

  /**
   * Lets ready streams write until `budget` bytes are out (as measured by `output.size`, the bytes queued) or none is
   * ready. Returns true when streams are still ready (the budget ran out): the caller should yield, then pump again.
   */
  pump(budget: number, output: { readonly size: number }): boolean {
    const start = output.size;
    while (this.head < this.ready.length && output.size - start < budget) {
      const stream = this.ready[this.head++]!;
      const result = stream.writeNext();
      if (result === WriteResult.MORE) {
        this.ready.push(stream);
      } else if (result === WriteResult.CONNECTION_BLOCKED) {
        // stays marked scheduled while parked, so a stream CREDIT cannot queue it a second time
        this.waitingForConnectionCredit.push(stream);
        if (this.waitingForConnectionCredit.length >= this.compactWaitingAt) {
          this.waitingForConnectionCredit = openOnly(this.waitingForConnectionCredit, 0);
          this.compactWaitingAt = Math.max(COMPACT_MIN, 2 * this.waitingForConnectionCredit.length);
        }
      } else {
        stream.scheduled = false;
      }
    }
    if (this.head < this.ready.length) return true;
    this.ready.length = 0;
    this.head = 0;
    this.compactReadyAt = COMPACT_MIN; // measured from what is queued from now on, not from an old burst
    return false;
  }

  /** Connection credit arrived: every parked stream gets its turn again. */
  unpark(): void {
    this.compactWaitingAt = COMPACT_MIN;
    for (const stream of this.waitingForConnectionCredit.splice(0)) {
      stream.scheduled = false;
      this.add(stream);
    }
  }

  clear(): void {
    this.ready.length = 0;
    this.head = 0;
    this.waitingForConnectionCredit.length = 0;
    this.compactReadyAt = this.compactWaitingAt = COMPACT_MIN;
  }
}

/** The open streams of `list` from `from` on, in order; the closed ones are no longer scheduled. */
function openOnly(list: readonly Stream[], from: number): Stream[] {
  const open: Stream[] = [];
  for (let i = from; i < list.length; i++) {
    const stream = list[i]!;
    if (stream.closed) stream.scheduled = false;
    else open.push(stream);
  }
  return open;
}
