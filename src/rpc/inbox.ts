/**
 * What a stream delivered, waiting for an async-iterating reader (`for await`). Credit goes back to the peer as the
 * reader takes each item, never on arrival, so a reader that stops holds back only its own stream and the queue never
 * holds more than the stream's windows allow.
 *
 * A clean end is reported after every queued item; so is an error trailer (END), which the peer sent after its data.
 * A reset, a local cancel or a lost connection is reported at once and drops what was queued: the call is over.
 * A reader that stops early (`break`) returns no more credit, so the peer stalls rather than sending into the void;
 * a caller that stops reading also cancels its call.
 */
import type { Stream } from '../session/stream.js';
import type { RpcError } from './rpc-error.js';

/** Responses of a streaming call, or the requests a streaming handler reads. `for await` them; `break` cancels. */
export interface MessageStream<T> extends AsyncIterableIterator<T> {
  /** Stops reading: the call is cancelled if it is still running. */
  return(): Promise<IteratorResult<T, undefined>>;
}

/** The bytes of a bulk body: chunks in order; ends only when the sender ended cleanly, else throws an RpcError. */
export type ByteStream = MessageStream<Uint8Array>;

/** Who hears that the reader stopped early (`break`, `return()`): a client call then cancels itself. */
export interface InboxOwner {
  readerStopped(): void;
}

/** An owner with nothing to do when its reader stops (a handler's requests: the handler's answer ends the call). */
export const NO_INBOX_OWNER: InboxOwner = { readerStopped() {} };

interface Item<T> {
  value: T;
  charge: number;
  /** Bulk chunks packed together: the buffer `value` is a view of, with room to pack more. */
  room?: Uint8Array;
}

const DONE: IteratorResult<never, undefined> = Object.freeze({ done: true, value: undefined });
/**
 * Bulk chunks smaller than this that have to wait behind another such chunk are copied and packed together until
 * the packed item is no longer small: a peer sending one-byte frames must not make the reader hold a million items, each pinning a
 * whole socket chunk. One that waits alone or behind a larger chunk is kept as it is (the small end of a frame that
 * straddled two socket reads, next to the large rest of it): the queue still holds at most two items per
 * SMALL_CHUNK_BYTES queued, plus one.
 */
const SMALL_CHUNK_BYTES = 16 * 1024;
const MIN_PACKED_ROOM_BYTES = 256;
/** A reader that always lags a little never empties the queue: drop the taken slots once they are most of it. */
const COMPACT_AFTER = 1024;
/** What `items` is until something has to wait: an idle inbox allocates no array. Never pushed to (frozen). */
const NO_ITEMS: never[] = Object.freeze([]) as never[];

export class Inbox<T> implements MessageStream<T> {
  private items: Item<T>[] = NO_ITEMS;
  private head = 0;
  private ended = false;
  private failure: RpcError | undefined;
  /** Set once the reader has seen the end or the error, or stopped: later next() calls are done. */
  private finished = false;
  private waiter: { resolve(result: IteratorResult<T, undefined>): void; reject(error: RpcError): void } | undefined;

  constructor(
    private readonly stream: Stream | undefined,
    /** True when items are messages (they also carry message credit); false for bulk chunks. */
    private readonly messages: boolean,
    /** Told when the reader stops early (`break`, `return()`): an object, not a closure per call. */
    private readonly owner: InboxOwner,
    /** Turns a queued item into what the reader gets (validation); may reject with an RpcError. */
    private readonly check?: (value: T) => T | Promise<T>,
  ) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** Items delivered and not yet taken by the reader. */
  get pending(): number {
    return this.items.length - this.head;
  }

  /** An item arrived with the credit `charge` it holds. */
  push(value: T, charge: number): void {
    // a reader that stopped gets nothing more, and neither does the peer's credit: it stalls instead of sending on
    if (this.finished) return;
    if (this.failure !== undefined) {
      this.stream?.consume(charge, this.messages);
      return;
    }
    const waiter = this.waiter;
    if (waiter !== undefined && this.head === this.items.length) {
      this.waiter = undefined;
      this.stream?.consume(charge, this.messages);
      this.deliver(value, waiter);
      return;
    }
    if (!this.messages && (value as Uint8Array).length < SMALL_CHUNK_BYTES) {
      this.queueSmallChunk(value as Uint8Array, charge);
      return;
    }
    if (this.items === NO_ITEMS) this.items = [];
    this.items.push({ value, charge });
  }

  private queueSmallChunk(chunk: Uint8Array, charge: number): void {
    const last = this.head < this.items.length ? (this.items[this.items.length - 1] as Item<Uint8Array>) : undefined;
    if (last === undefined || last.value.length >= SMALL_CHUNK_BYTES) {
      if (this.items === NO_ITEMS) this.items = [];
      this.items.push({ value: chunk as T, charge }); // alone, or after a large chunk: kept as it is (see above)
      return;
    }
    // packed into room that doubles as it fills (at most 2 x SMALL_CHUNK_BYTES: both parts are small), so a flood of
    // one-byte frames costs a copy per byte, not a copy of everything packed so far per frame
    const length = last.value.length;
    const packed = length + chunk.length;
    let room = last.room;
    if (room === undefined || packed > room.length) {
      room = new Uint8Array(Math.min(2 * SMALL_CHUNK_BYTES, Math.max(MIN_PACKED_ROOM_BYTES, 2 * packed)));
      room.set(last.value);
      last.room = room;
    }
    room.set(chunk, length);
    last.value = room.subarray(0, packed);
    last.charge += charge;
    this.stream?.consume(0, false); // two deliveries, one item: the stream counts what is still unconsumed
  }

  /** The sender ended cleanly: the reader gets `done` after what is queued. */
  end(): void {
    this.ended = true;
    if (this.waiter !== undefined && this.head === this.items.length) this.settleWaiter();
  }

  /** The call failed. `afterQueued`: the error comes after what is queued (an error trailer), else at once. */
  fail(error: RpcError, afterQueued = false): void {
    if (this.finished || this.failure !== undefined) return;
    this.failure = error;
    if (!afterQueued) this.dropQueued();
    if (this.waiter !== undefined && this.head === this.items.length) this.settleWaiter();
  }

  next(): Promise<IteratorResult<T, undefined>> {
    if (this.head < this.items.length) {
      const item = this.items[this.head]!;
      this.items[this.head++] = undefined as unknown as Item<T>; // let the value go as soon as the reader has it
      if (this.head === this.items.length) {
        this.items = [];
        this.head = 0;
      } else if (this.head > COMPACT_AFTER && this.head * 2 > this.items.length) {
        this.items = this.items.slice(this.head);
        this.head = 0;
      }
      this.stream?.consume(item.charge, this.messages);
      // a bulk chunk (nothing to check): no closure, no settle object per item
      if (this.check === undefined) return Promise.resolve({ done: false, value: item.value });
      return new Promise((resolve, reject) => this.deliver(item.value, { resolve, reject }));
    }
    if (this.finished) return Promise.resolve(DONE);
    if (this.failure !== undefined || this.ended) {
      return new Promise((resolve, reject) => this.settleWaiterWith({ resolve, reject }));
    }
    if (this.waiter !== undefined) return Promise.reject(new Error('next() called again before the previous one settled'));
    if (!this.messages) this.stream?.readerWaits(); // a bulk body's reader idles: its window tuner measures it
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  return(): Promise<IteratorResult<T, undefined>> {
    if (!this.finished) {
      this.finished = true;
      this.items = []; // dropped without credit, as what still arrives
      this.head = 0;
      this.owner.readerStopped();
    }
    return Promise.resolve(DONE);
  }

  private deliver(value: T, to: { resolve(result: IteratorResult<T, undefined>): void; reject(error: RpcError): void }): void {
    if (this.check === undefined) {
      to.resolve({ done: false, value });
      return;
    }
    Promise.resolve()
      .then(() => this.check!(value))
      .then(
        (checked) => to.resolve({ done: false, value: checked }),
        (error: RpcError) => to.reject(error),
      );
  }

  private settleWaiter(): void {
    const waiter = this.waiter!;
    this.waiter = undefined;
    this.settleWaiterWith(waiter);
  }

  private settleWaiterWith(to: { resolve(result: IteratorResult<T, undefined>): void; reject(error: RpcError): void }): void {
    this.finished = true;
    if (this.failure !== undefined) to.reject(this.failure);
    else to.resolve(DONE);
  }

  private dropQueued(): void {
    for (let i = this.head; i < this.items.length; i++) this.stream?.consume(this.items[i]!.charge, this.messages);
    this.items = [];
    this.head = 0;
  }
}
