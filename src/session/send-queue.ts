/**
 * What a stream could not write at once, in order: messages and bulk chunks waiting for credit or for their turn, and
 * our END behind them. Lets them out one frame at a time within the stream's and the connection's credit (a message
 * is cut into fragments when credit is short; it waits for a message credit before its first and spends it with its
 * last), and counts what waits against the high-water mark that asks a sender to wait. A stream creates one when it
 * first has to queue and drops it once empty: a small message written at once never needs one. What waits is reserved
 * from the connection's memory (maxQueuedSendBytes and the process's budget) as it is queued and given back as it is
 * written, so a peer that grants no credit cannot make us hold more than that (T-D5). A DATA frame is never smaller
 * than min(what remains of its message or chunk, the data floor) (Data Dribble, CVE-2019-9511: a peer granting credit
 * a byte at a time gets nothing until it has granted the floor). Knows nothing of the stream's lifecycle: it says when
 * our last frame has been written, and the stream moves its state.
 */
import { Flag, FrameType, MIN_DATA_FRAME_BYTES } from '../wire/constants.js';

/**
 * Bytes a stream may hold queued beyond what the peer's credit lets out before a sender is asked to wait: one bulk
 * chunk waits while the next is produced, so credit never arrives to an empty queue, and no queue grows without bound.
 */
export const SEND_HIGH_WATER_BYTES = 64 * 1024;
/**
 * A bulk sender (chunks, no message boundaries) may have up to this much queued while the peer's credit (the stream's
 * and the connection's) would let all of it out at once: its chunks then leave several per flush, in one vectored
 * write, and it waits once per several chunks instead of once per chunk. Without that credit it is held to
 * SEND_HIGH_WATER_BYTES as any sender, so a peer that grants nothing makes us hold no more than before.
 */
export const BULK_HIGH_WATER_BYTES = 256 * 1024;
/**
 * The connection's streams together may hold this much queued (one flush's worth) before none of them gets more than
 * SEND_HIGH_WATER_BYTES: a hundred bulk senders at once queue no more than before, and fit maxQueuedSendBytes.
 */
export const BULK_CONNECTION_QUEUE_BYTES = 1024 * 1024;

/**
 * The high-water mark of a stream's queue: SEND_HIGH_WATER_BYTES, or for a bulk sender (`bulk`) as much more, up to
 * BULK_HIGH_WATER_BYTES, as `credit` (the least of the stream's and the connection's send credit) lets out at once,
 * while the connection's streams hold less than BULK_CONNECTION_QUEUE_BYTES queued (`connectionQueued`).
 */
export function highWaterFor(bulk: boolean, credit: number, connectionQueued: number): number {
  if (!bulk || credit <= SEND_HIGH_WATER_BYTES || connectionQueued >= BULK_CONNECTION_QUEUE_BYTES) return SEND_HIGH_WATER_BYTES;
  return credit < BULK_HIGH_WATER_BYTES ? credit : BULK_HIGH_WATER_BYTES;
}
/** What a queued item costs against the high-water mark besides its bytes, so tiny messages cannot pile up by the million. */
const QUEUED_ITEM_COST = 64;
/**
 * A message of at most this many bytes is small: written straight into the outgoing buffer when nothing holds it back
 * (stream.ts), and when it has to wait, in the outbox's latency class, written before any bulk data at every flush
 * (scheduler.ts). 16 KiB crosses loopback in a few microseconds, a quarter of one bulk frame, so letting it jump the
 * queue costs bulk nothing measurable; a larger message is bulk itself, its latency dominated by its own size.
 */
export const SMALL_MESSAGE_BYTES = 16 * 1024;

/** Result of Stream.writeNext for the session's scheduler: whether the stream's queue has more to write now. */
export const enum WriteResult {
  /** More frames are ready to write now. */
  MORE,
  /** Nothing left to write now (queue empty, or waiting for this stream's credit). */
  IDLE,
  /** Waiting for connection-level credit. */
  CONNECTION_BLOCKED,
}

/** What one SendQueue.writeNext() did; the stream turns it into a WriteResult. */
export const enum QueueStep {
  /** A DATA frame was written (more may follow). */
  WROTE,
  /** Our last frame (END, or DATA with END_STREAM) was written: nothing of ours follows it. */
  WROTE_LAST,
  /** Nothing written: waiting for this stream's credit (bytes, or a message credit). */
  STREAM_BLOCKED,
  /** Nothing written: waiting for the connection's credit. */
  CONNECTION_BLOCKED,
}

/** The part of the outbox queued frames are written through. */
export interface QueueOutput {
  /** Largest DATA payload that may be written now: the connection credit left, within the peer's frame limit. */
  readonly dataAllowance: number;
  /**
   * Smallest DATA frame that is not the rest of its message or chunk: MIN_DATA_FRAME_BYTES, or the peer's connection
   * window when its HELLO announced a smaller one (never a deadlock for a small window honestly granted).
   */
  readonly dataFloor: number;
  /** Writes a DATA frame (at most dataAllowance bytes), spending that much connection credit. */
  writeData(flags: number, streamId: number, payload: Uint8Array): void;
  /** Writes a frame that spends no credit (END, RESET, CREDIT). */
  writeFrame(type: number, flags: number, streamId: number, payload?: Uint8Array): void;
}

/** The credit the peer has granted a stream, which writing from the queue spends. */
export interface SendCredit {
  sendWindow: number;
  sendMessageWindow: number;
  /** As QueueOutput.dataFloor, for the stream's own window: below MIN_DATA_FRAME_BYTES only if the peer granted less. */
  readonly sendFloor: number;
}

/** Where queued bytes are reserved (the connection's memory). */
export interface QueueMemory {
  /** Reserves bytes; returns why they cannot be queued (RESOURCE_EXHAUSTED), or undefined once reserved. */
  reserveQueuedSend(bytes: number): string | undefined;
  releaseQueuedSend(bytes: number): void;
}

/** A stream's floor for a peer window: MIN_DATA_FRAME_BYTES, or the window itself when it is smaller (0: none yet). */
export function dataFloorFor(window: number): number {
  return window > 0 && window < MIN_DATA_FRAME_BYTES ? window : MIN_DATA_FRAME_BYTES;
}

/** One frame waiting: DATA sent from `offset` on (its `flags` go on its last fragment), or with `end` our END. */
interface Outgoing {
  /** DATA bytes, or the END payload. */
  bytes: Uint8Array;
  offset: number;
  flags: number;
  end: boolean;
  next: Outgoing | undefined;
}

export class SendQueue {
  private head: Outgoing | undefined;
  private tail: Outgoing | undefined;
  private items = 0;
  /** DATA bytes queued and not yet written. */
  private bytes = 0;
  /**
   * What queued DATA costs: bytes not yet written, and QUEUED_ITEM_COST per DATA item. Reserved from the connection's
   * memory only while `charged`: before its OPEN is written, a stream's queue is the application's own backlog
   * (waiting for a concurrency slot, not for the peer's credit), which maxQueuedSendBytes does not bound.
   */
  private reserved = 0;

  constructor(
    private readonly memory: QueueMemory,
    /** False for a stream not yet opened: nothing is reserved until charge() (its OPEN written). */
    private charged = true,
  ) {}

  /** True once everything queued has been written. */
  get empty(): boolean {
    return this.head === undefined;
  }

  /** DATA bytes queued and not yet written (inspection). */
  get queuedBytes(): number {
    return this.bytes;
  }

  /** True while DATA bytes wait: a stall is then the peer's (its credit), not ours. */
  get holdsData(): boolean {
    return this.bytes > 0;
  }

  /**
   * True when what would be written next is small (scheduler.ts writes it before bulk data): our END, the end of a
   * bulk body (an empty END_STREAM), or the rest of a message of at most SMALL_MESSAGE_BYTES. Never a bulk chunk.
   */
  get nextIsSmall(): boolean {
    const item = this.head;
    if (item === undefined) return false;
    return item.end || (item.flags !== 0 && item.bytes.length - item.offset <= SMALL_MESSAGE_BYTES);
  }

  /** True while what waits is within `highWater` (each item counting 64 bytes besides its own). */
  within(highWater: number): boolean {
    return this.bytes + this.items * QUEUED_ITEM_COST <= highWater;
  }

  /**
   * Queues DATA: a message (flags MESSAGE_END, maybe END_STREAM), a bulk chunk (0), or an empty END_STREAM. Returns
   * why it cannot be queued (the connection's or the process's budget is full: nothing was queued), else undefined.
   */
  pushData(bytes: Uint8Array, flags: number): string | undefined {
    const cost = bytes.length + QUEUED_ITEM_COST;
    if (this.charged) {
      const refusal = this.memory.reserveQueuedSend(cost);
      if (refusal !== undefined) return refusal;
    }
    this.reserved += cost;
    this.push({ bytes, offset: 0, flags, end: false, next: undefined });
    this.bytes += bytes.length;
    return undefined;
  }

  /**
   * The stream's OPEN was written: what waits now waits for the peer's credit, and is reserved all at once. Returns
   * why it cannot be (nothing was reserved; the stream fails), else undefined.
   */
  charge(): string | undefined {
    if (this.charged) return undefined;
    if (this.reserved > 0) {
      const refusal = this.memory.reserveQueuedSend(this.reserved);
      if (refusal !== undefined) return refusal;
    }
    this.charged = true;
    return undefined;
  }

  /** Drops everything queued (the stream was reset) and gives its reservation back. */
  drop(): void {
    this.head = this.tail = undefined;
    this.items = 0;
    this.bytes = 0;
    if (this.reserved > 0 && this.charged) this.memory.releaseQueuedSend(this.reserved);
    this.reserved = 0;
  }

  /** Queues our END, after everything queued before it (not charged: one per stream, its size bounded by limits). */
  pushEnd(payload: Uint8Array): void {
    this.push({ bytes: payload, offset: 0, flags: 0, end: true, next: undefined });
  }

  /** Writes the next frame for stream `id` within `credit` and the connection's credit (the queue is not empty). */
  writeNext(id: number, credit: SendCredit, output: QueueOutput): QueueStep {
    const item = this.head!;
    if (item.end) {
      this.shift();
      output.writeFrame(FrameType.END, 0, id, item.bytes);
      return QueueStep.WROTE_LAST;
    }
    const remaining = item.bytes.length - item.offset;
    // a message needs one message credit; fragments of it wait with it, since its last frame would need it anyway
    if (item.flags & Flag.MESSAGE_END && item.offset === 0 && credit.sendMessageWindow === 0) {
      return QueueStep.STREAM_BLOCKED;
    }
    const window = credit.sendWindow;
    const n = Math.min(remaining, window, output.dataAllowance);
    // no DATA below the floor unless it is the rest of the item: wait for the credit to grow instead
    if (n < remaining && n < credit.sendFloor && n < output.dataFloor) {
      return n === window ? QueueStep.STREAM_BLOCKED : QueueStep.CONNECTION_BLOCKED;
    }
    const last = n === remaining;
    const chunk = item.offset === 0 && last ? item.bytes : item.bytes.subarray(item.offset, item.offset + n);
    item.offset += n;
    credit.sendWindow = window - n;
    this.bytes -= n;
    const released = last ? n + QUEUED_ITEM_COST : n;
    this.reserved -= released;
    if (this.charged) this.memory.releaseQueuedSend(released);
    if (last && item.flags & Flag.MESSAGE_END) credit.sendMessageWindow--;
    output.writeData(last ? item.flags : 0, id, chunk);
    if (!last) return QueueStep.WROTE;
    this.shift();
    return item.flags & Flag.END_STREAM ? QueueStep.WROTE_LAST : QueueStep.WROTE;
  }

  private push(item: Outgoing): void {
    if (this.tail === undefined) this.head = item;
    else this.tail.next = item;
    this.tail = item;
    this.items++;
  }

  private shift(): void {
    const item = this.head!;
    this.head = item.next;
    if (this.head === undefined) this.tail = undefined;
    item.next = undefined;
    this.items--;
  }
}
