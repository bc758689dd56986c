/**
 * Picks the next frame to write: small things first, then bulk data fairly between streams. Two classes of ready
 * streams: the latency class (streams whose next frame is a small message or their END, send-queue.ts nextIsSmall) is
 * emptied first at every pump, in the order the streams became ready; then the bulk class, round-robin, one frame per
 * stream per turn, within the pump's byte budget, so a bulk sender can neither monopolise a tick nor put a small
 * call's reply behind its data. A stream moves between the classes as its queue's head changes (it is in at most one
 * list at a time, so its own frames never change order). Streams waiting for connection credit are parked until it
 * arrives. Knows nothing of methods or codecs, nor of how frames reach the socket.
 *
 * Strict priority could starve bulk data if small messages kept arriving faster than a flush's budget: the bulk class
 * always gets at least one turn per pump.
 *
 * A stream that closes while queued is not taken out at once (that would be a search per close); it is skipped when
 * its turn comes. While the transport asks us to wait, no turn comes: a peer that reads nothing and opens and cancels
 * calls at line rate would pile up closed streams here without end (each holding its stream object). So every list
 * drops its closed streams whenever it has doubled since the last time: never more than twice the open streams
 * (plus COMPACT_MIN), at an amortised cost of one check per stream queued.
 */
import { WriteResult } from './send-queue.js';
import type { Stream } from './stream.js';

/** Below this many entries a list is never searched for closed streams. */
const COMPACT_MIN = 1024;

/** A FIFO of streams (an array and a head index) that drops its closed streams whenever it has doubled. */
class StreamList {
  private items: Stream[] = [];
  private head = 0;
  /** When the list (from head) reaches this length, its closed streams are dropped. */
  private compactAt = COMPACT_MIN;

  get length(): number {
    return this.items.length - this.head;
  }

  push(stream: Stream): void {
    this.items.push(stream);
    if (this.items.length - this.head >= this.compactAt) {
      this.items = openOnly(this.items, this.head);
      this.head = 0;
      this.compactAt = Math.max(COMPACT_MIN, 2 * this.items.length);
    }
  }

  /** The next stream (the list is not empty). */
  shift(): Stream {
    const stream = this.items[this.head++]!;
    if (this.head === this.items.length) this.clear();
    return stream;
  }

  /** Takes every stream out, in order. */
  takeAll(): Stream[] {
    const all = this.head === 0 ? this.items : this.items.slice(this.head);
    this.items = [];
    this.clear();
    return all;
  }

  clear(): void {
    this.items.length = 0;
    this.head = 0;
    this.compactAt = COMPACT_MIN; // measured from what is queued from now on, not from an old burst
  }
}

export class StreamScheduler {
  /** Ready streams whose next frame is small: written first. */
  private readonly small = new StreamList();
  /** Ready streams whose next frame is bulk data: round-robin. */
  private readonly bulk = new StreamList();
  private readonly waitingForConnectionCredit = new StreamList();

  /** Streams queued or parked, closed ones not yet dropped included. */
  get size(): number {
    return this.small.length + this.bulk.length + this.waitingForConnectionCredit.length;
  }

  /** True while streams are ready to write, small or bulk (the outbox then pumps again next turn). */
  get hasReady(): boolean {
    return this.small.length + this.bulk.length > 0;
  }

  /** Queues a stream that has frames to write; false if it was already queued (or parked). */
  add(stream: Stream): boolean {
    if (stream.scheduled) return false;
    stream.scheduled = true;
    this.ready(stream);
    return true;
  }

  /**
   * Lets ready streams write until `budget` bytes are out (as measured by `output.size`, the bytes queued) or none is
   * ready: the latency class first, then bulk round-robin (at least one bulk turn, whatever the small ones took).
   * Streams still ready when the budget ran out wait for the next pump (hasReady).
   */
  pump(budget: number, output: { readonly size: number }): void {
    const start = output.size;
    while (this.small.length > 0 && output.size - start < budget) this.turn(this.small.shift());
    for (let turns = 0; this.bulk.length > 0 && (output.size - start < budget || turns === 0); turns++) this.turn(this.bulk.shift());
  }

  /** Connection credit arrived: every parked stream gets its turn again. */
  unpark(): void {
    for (const stream of this.waitingForConnectionCredit.takeAll()) this.ready(stream);
  }

  clear(): void {
    this.small.clear();
    this.bulk.clear();
    this.waitingForConnectionCredit.clear();
  }

  private ready(stream: Stream): void {
    if (stream.sendsSmallNext) this.small.push(stream);
    else this.bulk.push(stream);
  }

  private turn(stream: Stream): void {
    const result = stream.writeNext();
    if (result === WriteResult.MORE) {
      this.ready(stream); // its next frame may be of the other class now
    } else if (result === WriteResult.CONNECTION_BLOCKED) {
      // stays marked scheduled while parked, so a stream CREDIT cannot queue it a second time
      this.waitingForConnectionCredit.push(stream);
    } else {
      stream.scheduled = false;
    }
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
