/**
 * Picks the next frame to write, fairly between streams: round-robin, one frame per stream per turn, with a byte
 * budget per flush so a bulk sender cannot monopolise a tick. Streams waiting for connection credit are parked
 * until it arrives. Knows nothing of methods or codecs, nor of how frames reach the socket.
 */
import { WriteResult } from './send-queue.js';
import type { Stream } from './stream.js';

export class StreamScheduler {
  private readonly ready: Stream[] = [];
  private head = 0;
  private readonly waitingForConnectionCredit: Stream[] = [];

  /** Queues a stream that has frames to write; false if it was already queued (or parked). */
  add(stream: Stream): boolean {
    if (stream.scheduled) return false;
    stream.scheduled = true;
    this.ready.push(stream);
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
      } else {
        stream.scheduled = false;
      }
    }
    if (this.head < this.ready.length) return true;
    this.ready.length = 0;
    this.head = 0;
    return false;
  }

  /** Connection credit arrived: every parked stream gets its turn again. */
  unpark(): void {
    for (const stream of this.waitingForConnectionCredit.splice(0)) {
      stream.scheduled = false;
      this.add(stream);
    }
  }

  clear(): void {
    this.ready.length = 0;
    this.head = 0;
    this.waitingForConnectionCredit.length = 0;
  }
}
