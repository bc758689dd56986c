/**
 * Sending on a stream with back pressure: a send resolves at once while the stream's queue is below its high-water
 * mark, and otherwise once the peer's credit has let enough out. A producer (an async generator, a Node Readable) is
 * pulled only as fast as that, so nothing queues without bound.
 */
import type { Stream } from '../session/stream.js';
import { RpcError } from './rpc-error.js';
import { Status } from '../wire/constants.js';

export class StreamSender {
  private waiter: { resolve(): void; reject(error: RpcError): void } | undefined;
  private failure: RpcError | undefined;

  constructor(private readonly stream: Stream) {}

  /** Sends a message (or with `chunk` bulk bytes); undefined when the caller may go on at once, else when to. */
  send(bytes: Uint8Array, chunk = false): Promise<void> | undefined {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.waiter !== undefined) {
      return Promise.reject(new RpcError(Status.FAILED_PRECONDITION, 'send() called while an earlier send() still waits for credit: await each send() first'));
    }
    const below = chunk ? this.stream.sendChunk(bytes) : this.stream.sendMessage(bytes);
    if (below) return undefined;
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  /** The stream's queue went down to its high-water mark. */
  writable(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.resolve();
  }

  /** The call is over: a waiting send and every later one fail with `error`. */
  fail(error: RpcError): void {
    this.failure ??= error;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(this.failure);
  }

  get failed(): RpcError | undefined {
    return this.failure;
  }
}

/**
 * Pulls `source` and hands each item to `send`, waiting whenever send asks to. Stops pulling (and lets the producer
 * clean up through its `return()`) as soon as `send` throws or rejects. Rejects with whatever the source or send threw.
 */
export async function pumpSource<T>(
  source: Iterable<T> | AsyncIterable<T>,
  send: (item: T) => Promise<void> | undefined,
): Promise<void> {
  for await (const item of source) {
    const wait = send(item);
    if (wait !== undefined) await wait;
  }
}

/**
 * What a bulk body may be: one Uint8Array, a Node Readable (fs, socket, stdin), a web ReadableStream, or any iterable or
 * async iterable of chunks (an async generator). body-pump.ts pulls each the cheapest way.
 */
export type ByteSource = Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

/** Throws a TypeError for what cannot be a bulk body (checked before the call opens). */
export function checkBody(source: ByteSource): void {
  if (source instanceof Uint8Array) return;
  if (source === null || (typeof source !== 'object' && typeof source !== 'function')) {
    throw new TypeError('a bulk body must be a Uint8Array, an iterable or an async iterable of Uint8Array (e.g. a Node Readable)');
  }
  if (!(Symbol.asyncIterator in source) && !(Symbol.iterator in source)) {
    throw new TypeError('a bulk body must be a Uint8Array, an iterable or an async iterable of Uint8Array (e.g. a Node Readable)');
  }
}

/**
 * Lets go of a source that will never be pumped (the call ended first): a Node Readable is destroyed (closing its
 * file descriptor now rather than at GC), a web ReadableStream cancelled, a generator returned (running its finally
 * blocks once started).
 */
export function discardSource(source: unknown): void {
  if (source === null || typeof source !== 'object') return;
  const s = source as { destroy?: () => void; return?: () => unknown; cancel?: () => unknown; getReader?: unknown; locked?: boolean };
  try {
    if (typeof s.destroy === 'function') s.destroy();
    else if (typeof s.getReader === 'function' && typeof s.cancel === 'function') {
      if (s.locked !== true) Promise.resolve(s.cancel()).catch(() => undefined);
    } else if (typeof s.return === 'function') Promise.resolve(s.return()).catch(() => undefined);
  } catch {
    // a source that fails to close is still not ours to report on: the call is already over
  }
}

/** Rejects what is not bytes before it reaches the wire: a Readable in object or string mode yields strings. */
export function checkChunk(chunk: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  throw new RpcError(Status.INTERNAL, `a bulk body yielded ${typeof chunk === 'string' ? 'a string' : typeof chunk}, not a Uint8Array`);
}
