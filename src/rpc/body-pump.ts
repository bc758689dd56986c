/**
 * Pumps a bulk body (a ByteSource) into a stream, each kind of source the way that costs it the fewest promises and
 * event hops per chunk, all behind the one `send` that says when to wait (sender.ts). Knows nothing of streams, frames
 * or calls: it pulls chunks and hands them on.
 *
 * | source                         | how it is pulled                                  | per chunk, while send says go on  |
 * |--------------------------------|---------------------------------------------------|-----------------------------------|
 * | one Uint8Array                 | cut into views of BYTES_SLICE (never copied)      | nothing: a loop                   |
 * | a Node Readable (fs, socket,   | 'data' events; pause() while send waits, resume() | one 'data' event, no promise      |
 * | stdin, a Duplex's read side)   | after; end and errors from stream.finished()      | (never the async iterator's)      |
 * | (other Readable-like objects   | are pulled as the async iterables they are)       |                                   |
 * | a web ReadableStream           | its reader's read()                               | the read()'s promise              |
 * | a sync iterable                | for...of                                          | nothing: a loop                   |
 * | an async iterable              | for await                                         | the iterator's next() promise     |
 *
 * A wait (send returned a promise) is awaited; a send that throws or a wait that rejects stops the pump and lets go
 * of the source (a Readable is destroyed, a web stream cancelled, an iterator returned), and the pump rejects with that
 * error; so does a source that fails.
 */
import { finished, Readable } from 'node:stream';
import { pumpSource } from './sender.js';

/** Hands a chunk on; undefined when the next may follow at once, else a promise of when it may. May throw. */
export type SendChunk = (chunk: Uint8Array) => Promise<void> | undefined;

/**
 * One Uint8Array is sent as views of this size, each queued only once the one before has mostly left: a body far
 * larger than the sender's queue budget (maxQueuedSendBytes) never has to fit in it, and its bytes are never copied.
 */
const BYTES_SLICE = 1024 * 1024;

/** True for a Node Readable: fs and net streams, process.stdin, a Duplex's or Transform's read side. */
function isNodeReadable(source: object): source is Readable {
  return source instanceof Readable;
}

/** True for a web ReadableStream (WHATWG streams): it has a reader. */
function isWebStream(source: object): source is ReadableStream<Uint8Array> {
  return typeof (source as { getReader?: unknown }).getReader === 'function';
}

/** Pumps `source` into `send` until it ends; see the module header. */
export function pumpBody(source: Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>, send: SendChunk): Promise<void> {
  if (source instanceof Uint8Array) return pumpBytes(source, send);
  if (isNodeReadable(source)) return pumpReadable(source, send);
  if (isWebStream(source)) return pumpWebStream(source, send);
  if (Symbol.asyncIterator in source) return pumpSource(source, send); // for await, as a stream of messages is pumped
  return pumpIterable(source, send);
}

async function pumpBytes(bytes: Uint8Array, send: SendChunk): Promise<void> {
  for (let at = 0; at < bytes.length; at += BYTES_SLICE) {
    const wait = send(at === 0 && bytes.length <= BYTES_SLICE ? bytes : bytes.subarray(at, Math.min(bytes.length, at + BYTES_SLICE)));
    if (wait !== undefined) await wait;
  }
}

async function pumpIterable(source: Iterable<Uint8Array>, send: SendChunk): Promise<void> {
  // for...of returns the iterator (its finally blocks run) when the body throws
  for (const chunk of source) {
    const wait = send(chunk);
    if (wait !== undefined) await wait;
  }
}

async function pumpWebStream(source: ReadableStream<Uint8Array>, send: SendChunk): Promise<void> {
  const reader = source.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      const wait = send(value);
      if (wait !== undefined) await wait;
    }
  } catch (error) {
    reader.cancel(error).catch(() => undefined); // the stream's own failure, or ours: either way it is let go
    throw error;
  } finally {
    reader.releaseLock();
  }
}

/**
 * A Node Readable in flowing mode: each 'data' chunk is sent as it is emitted (in the same turn the source pushed it:
 * no promise, no tick), and the source is paused while send asks to wait. A chunk emitted anyway meanwhile (a source
 * that pushes from within resume()) is held and sent first. Ends once the source has ended and every chunk is sent.
 */
function pumpReadable(readable: Readable, send: SendChunk): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let waiting = false;
    let ended = false;
    let settled = false;
    let held: Uint8Array[] | undefined;

    const fail = (error: unknown): void => {
      if (settled) return;
      settled = true;
      readable.off('data', onData);
      // its file descriptor is closed now, not at GC; a no-op for one already failed. finished()'s listeners stay,
      // so an 'error' the source emits later is not an uncaught one
      readable.destroy();
      reject(error);
    };
    const offer = (chunk: Uint8Array): void => {
      let wait: Promise<void> | undefined;
      try {
        wait = send(chunk);
      } catch (error) {
        fail(error);
        return;
      }
      if (wait === undefined) return;
      waiting = true;
      readable.pause();
      wait.then(onGo, fail);
    };
    const onGo = (): void => {
      waiting = false;
      while (held !== undefined && held.length > 0 && !waiting && !settled) offer(held.shift()!);
      if (waiting || settled) return;
      if (ended) {
        settled = true;
        readable.off('data', onData);
        resolve();
        return;
      }
      readable.resume();
    };
    function onData(chunk: Uint8Array): void {
      if (waiting) {
        (held ??= []).push(chunk);
        readable.pause();
        return;
      }
      offer(chunk);
    }
    finished(readable, { readable: true, writable: false }, (error) => {
      if (error !== undefined && error !== null) {
        fail(error);
        return;
      }
      ended = true;
      if (!waiting && !settled) onGo();
    });
    readable.on('data', onData);
    readable.resume(); // a source its owner paused is not started by a 'data' listener alone
  });
}
