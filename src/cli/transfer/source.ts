/**
 * Where a sender's bytes come from: a file (seekable: it can be read again from any offset, so a sender can hash its
 * own prefix and rewind past its window), a stream such as stdin (read once, from the start: the sender keeps only its
 * unacknowledged window in memory), or a generated dataset (a size and `open(offset)`). And `chunksOf`, which cuts
 * any of them into the transfer's chunks.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';

export interface TransferSource {
  /** The whole size when known up front (a file, a dataset), undefined for a stream. */
  readonly size: number | undefined;
  /** True when `open` may be called again, at any offset. */
  readonly seekable: boolean;
  /** The bytes from `offset` to the end, in pieces of any size. A source that is not seekable is opened once, at 0. */
  open(offset: number): AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
}

/** A file on disk, read with a 1 MiB read-ahead; its size is taken now (a file that grows later is sent to that size). */
export async function fileSource(path: string): Promise<TransferSource> {
  const info = await stat(path);
  if (!info.isFile()) throw Object.assign(new Error(`${path} is not a regular file`), { code: 'EISDIR' });
  const size = info.size;
  return {
    size,
    seekable: true,
    open: (offset) => (offset >= size ? [] : createReadStream(path, { start: offset, end: size - 1, highWaterMark: 1024 * 1024 })),
  };
}

/** A stream read once (stdin, a socket, a generator): not seekable, size unknown unless given. */
export function streamSource(stream: Readable | AsyncIterable<Uint8Array>, size?: number): TransferSource {
  let opened = false;
  return {
    size,
    seekable: false,
    open(offset) {
      if (opened || offset !== 0) throw new Error('a stream source is read once, from its start');
      opened = true;
      return stream;
    },
  };
}

/** A dataset made on demand (the demo's): `open(offset)` gives its bytes from `offset`; the same bytes every time. */
export function generatedSource(size: number, open: (offset: number) => AsyncIterable<Uint8Array> | Iterable<Uint8Array>): TransferSource {
  return { size, seekable: true, open };
}

/**
 * Buffers of one size, given back once their bytes are no longer needed: a transfer allocates a few chunk buffers
 * instead of one per chunk (large buffers allocated at that rate cost more in garbage collection than the copy into them).
 */
export class BufferPool {
  private readonly free: Buffer[] = [];

  constructor(
    readonly size: number,
    private readonly keep: number,
  ) {}

  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafe(this.size);
  }

  /** `buffer` (or a view from its start) is not used any more by anyone. */
  give(buffer: Uint8Array): void {
    if (buffer.byteOffset === 0 && buffer.buffer.byteLength === this.size && this.free.length < this.keep) {
      this.free.push(Buffer.from(buffer.buffer, 0, this.size));
    }
  }
}

/**
 * Cuts `pieces` into chunks of `chunkSize` bytes (the last may be shorter; none when there are no bytes), each a
 * Buffer the caller may keep (taken from `pool` when given: the caller gives it back when done).
 */
export async function* chunksOf(pieces: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, chunkSize: number, pool?: BufferPool): AsyncGenerator<Buffer, void, undefined> {
  const fresh = (): Buffer => pool?.take() ?? Buffer.allocUnsafe(chunkSize);
  let chunk = fresh();
  let filled = 0;
  for await (const piece of pieces) {
    let at = 0;
    while (at < piece.length) {
      const take = Math.min(chunkSize - filled, piece.length - at);
      chunk.set(piece.subarray(at, at + take), filled);
      filled += take;
      at += take;
      if (filled === chunkSize) {
        yield chunk;
        chunk = fresh();
        filled = 0;
      }
    }
  }
  if (filled > 0) yield chunk.subarray(0, filled);
}
