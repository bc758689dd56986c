/**
 * Assembles outgoing frames into few, large socket writes. Frames are copied into a shared slab as they are queued;
 * payloads of 8 KiB or more are passed by reference instead, so bulk bytes are never copied. `take()` hands the
 * accumulated segments to the transport as one vectored write. Knows nothing of streams or methods.
 */
import { FRAME_HEADER_BYTES } from '../wire/constants.js';
import { writeFrameHeader } from '../wire/frame.js';

const SLAB_BYTES = 64 * 1024;
/**
 * A fresh or released writer starts with a slab this small (from Node's shared pool) and doubles it on each refill up
 * to SLAB_BYTES: an idle connection's keepalive PING must not buy back the 64 KiB that release() let go.
 */
const FIRST_SLAB_BYTES = 2 * 1024;
const ZERO_COPY_BYTES = 8 * 1024;
const EMPTY = new Uint8Array(0);
const NO_SLAB = Buffer.alloc(0);

export class FrameWriter {
  /** Allocated on first use and dropped by release(): an idle connection holds no slab (its pages count in RSS). */
  private slab: Buffer = NO_SLAB;
  private nextSlabBytes = FIRST_SLAB_BYTES;
  private start = 0;
  private pos = 0;
  private segments: Uint8Array[] = [];
  private pendingBytes = 0;

  /** Bytes queued and not yet taken. */
  get size(): number {
    return this.pendingBytes + (this.pos - this.start);
  }

  frame(type: number, flags: number, streamId: number, payload: Uint8Array = EMPTY): void {
    const length = payload.length;
    if (length >= ZERO_COPY_BYTES) {
      this.reserve(FRAME_HEADER_BYTES);
      writeFrameHeader(this.slab, this.pos, type, flags, streamId, length);
      this.pos += FRAME_HEADER_BYTES;
      this.cut();
      this.segments.push(payload);
      this.pendingBytes += length;
      return;
    }
    this.reserve(FRAME_HEADER_BYTES + length);
    writeFrameHeader(this.slab, this.pos, type, flags, streamId, length);
    this.pos += FRAME_HEADER_BYTES;
    if (length > 0) {
      this.slab.set(payload, this.pos);
      this.pos += length;
    }
  }

  /**
   * Writes a frame header and reserves `length` payload bytes right after it, for the caller to fill in
   * `this.target` at the returned offset before anything else is queued. Saves building the payload separately.
   */
  beginFrame(type: number, flags: number, streamId: number, length: number): number {
    this.reserve(FRAME_HEADER_BYTES + length);
    writeFrameHeader(this.slab, this.pos, type, flags, streamId, length);
    const at = this.pos + FRAME_HEADER_BYTES;
    this.pos = at + length;
    return at;
  }

  /** The buffer that beginFrame's offsets point into. */
  get target(): Uint8Array {
    return this.slab;
  }

  /** Everything queued so far, in order; the writer starts afresh (segments already handed out are never reused). */
  take(): Uint8Array[] {
    this.cut();
    const out = this.segments;
    this.segments = [];
    this.pendingBytes = 0;
    return out;
  }

  /** Lets go of the slab when nothing is queued (an idle connection); the next frame allocates a fresh one. */
  release(): void {
    if (this.size > 0) return;
    this.slab = NO_SLAB;
    this.nextSlabBytes = FIRST_SLAB_BYTES;
    this.start = 0;
    this.pos = 0;
  }

  private reserve(n: number): void {
    if (this.pos + n <= this.slab.length) return;
    this.cut();
    this.slab = Buffer.allocUnsafe(Math.max(this.nextSlabBytes, n));
    this.nextSlabBytes = Math.min(SLAB_BYTES, this.nextSlabBytes * 2);
    this.start = 0;
    this.pos = 0;
  }

  private cut(): void {
    if (this.pos > this.start) {
      this.segments.push(this.slab.subarray(this.start, this.pos));
      this.pendingBytes += this.pos - this.start;
      this.start = this.pos;
    }
  }
}
