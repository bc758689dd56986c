/**
 * An in-memory transport pair for tests, modelled on ws's duplex pair: bytes written on one end arrive on the other
 * in a later macrotask, like a socket's. Writes report backpressure past a high-water mark, and delivery can be
 * paused to simulate a peer that stopped reading (yamux's write blocker).
 */
import type { PeerInfo, Transport, TransportSink } from './transport.js';

const HIGH_WATER_MARK = 64 * 1024;

export interface MemoryTransport extends Transport {
  /** Stops (true) or resumes (false) delivering this end's writes to the other end. */
  setDeliveryPaused(paused: boolean): void;
  /** Bytes written by this end and not yet delivered. */
  readonly bufferedBytes: number;
}

class MemoryEnd implements MemoryTransport {
  other!: MemoryEnd;
  private sink: TransportSink | undefined;
  private queue: Uint8Array[] = [];
  private queued = 0;
  private inbox: Uint8Array[] = [];
  private scheduled = false;
  private paused = false;
  private needDrain = false;
  private ended = false;
  private endDelivered = false;
  closed = false;

  constructor(readonly peer: PeerInfo) {}

  get bufferedBytes(): number {
    return this.queued;
  }

  attach(sink: TransportSink): void {
    this.sink = sink;
    const early = this.inbox;
    this.inbox = [];
    for (const chunk of early) sink.onData(chunk);
  }

  write(chunks: readonly Uint8Array[]): boolean {
    if (this.closed || this.ended) return false;
    // one copy per write, as a socket's bytes pass through the kernel: the reader owns what it is handed (the decoder
    // keeps views of it), and the writer's buffers (a yielded bulk chunk, the outbox's slab) stay its own
    let size = 0;
    for (const chunk of chunks) size += chunk.length;
    if (size > 0) {
      const copy = new Uint8Array(size);
      let at = 0;
      for (const chunk of chunks) {
        copy.set(chunk, at);
        at += chunk.length;
      }
      this.queue.push(copy);
      this.queued += size;
    }
    this.schedule();
    if (this.queued > HIGH_WATER_MARK) this.needDrain = true;
    return !this.needDrain;
  }

  setDeliveryPaused(paused: boolean): void {
    this.paused = paused;
    if (!paused) this.schedule();
  }

  end(): void {
    if (this.closed || this.ended) return;
    this.ended = true;
    this.schedule();
  }

  destroy(error?: Error): void {
    if (this.closed) return;
    this.queue = [];
    this.queued = 0;
    this.close(error);
    // the other end sees a reset: no EOF, a close with an error, as a socket would after RST
    setImmediate(() => this.other.close(new Error('connection reset by peer')));
  }

  private close(error?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.sink?.onClose(error);
  }

  private schedule(): void {
    if (this.scheduled || this.paused) return;
    this.scheduled = true;
    setImmediate(() => this.deliver());
  }

  private deliver(): void {
    this.scheduled = false;
    if (this.paused || this.closed) return;
    const chunks = this.queue;
    this.queue = [];
    this.queued = 0;
    const target = this.other;
    for (const chunk of chunks) {
      if (target.closed) break;
      if (target.sink) target.sink.onData(chunk);
      else target.inbox.push(chunk);
    }
    if (this.needDrain) {
      this.needDrain = false;
      this.sink?.onDrain();
    }
    if (this.ended && !this.endDelivered && !target.closed) {
      this.endDelivered = true;
      target.sink?.onEnd();
      // both halves have delivered their EOF: the connection is closed on both ends
      if (target.endDelivered) {
        this.close();
        target.close();
      }
    }
  }
}

/** Two connected in-memory transports. */
export function createMemoryPair(): [MemoryTransport, MemoryTransport] {
  const a = new MemoryEnd({ transport: 'memory', address: 'memory://a' });
  const b = new MemoryEnd({ transport: 'memory', address: 'memory://b' });
  a.other = b;
  b.other = a;
  return [a, b];
}
