// How gridwire's bulk scenarios produce a body and read one, for each BulkBody (index.ts), through the public API's
// ByteSource (what `put` takes and a `get` handler returns) and the AsyncIterable a `get` call or a `put` handler
// reads. The sources produce CHUNK_BYTES chunks until told to stop, counting each as it is produced (so a chunk
// buffered inside a Readable or a ReadableStream is counted, and the byte count check then proves it arrived):
//   generator   an async generator (the default, gridwire.ts's own), read with `for await`
//   readable    a Node Readable pushing one 64 KiB Buffer per read() with a 64 KiB highWaterMark, as an fs stream
//               does; read with `for await`
//   web-stream  a web ReadableStream (default, not byte, stream: a byte stream would detach the reused chunk)
//               enqueuing one chunk per pull(); read with `for await`
//   bytes       one BYTES_BODY_BYTES Uint8Array per call, calls back to back (the scenario loops, not the source)
//   pipeline    a Node Readable as above; read with stream.pipeline() into a Node Writable that counts
// Knows nothing of services, sessions or the side's timeline.
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ReadableStream } from 'node:stream/web';
import type { BulkBody } from './scenario.js';
import { CHUNK_BYTES, MiB, type ByteMeter } from './scenario.js';

/** The `bytes` body: big enough that a call's set-up is small beside it, within the default maxQueuedSendBytes (32 MiB). */
export const BYTES_BODY_BYTES = 16 * MiB;
let sharedBytesBody: Uint8Array | undefined;

/** The one Uint8Array every `bytes` call sends (allocated on first use). */
export function bytesBody(): Uint8Array {
  return (sharedBytesBody ??= new Uint8Array(BYTES_BODY_BYTES).fill(0x5a));
}

/** A Buffer, as fs streams push: a Readable would wrap a plain Uint8Array in a new Buffer view on every push. */
const READABLE_CHUNK = Buffer.alloc(CHUNK_BYTES, 0x5a);
const WEB_CHUNK = new Uint8Array(CHUNK_BYTES).fill(0x5a);

/** What a streaming source needs: where to count, when to stop, whom to tell that it produced its last chunk. */
export interface SourceControl {
  sent: ByteMeter;
  stopped(): boolean;
  onEnd(): void;
}

/** A Node Readable of CHUNK_BYTES chunks until `stopped()`, like fs.createReadStream (64 KiB highWaterMark). */
export function readableSource(control: SourceControl): Readable {
  return new Readable({
    highWaterMark: CHUNK_BYTES,
    read() {
      if (control.stopped()) {
        this.push(null);
        control.onEnd();
        return;
      }
      control.sent.add(CHUNK_BYTES);
      this.push(READABLE_CHUNK);
    },
  });
}

/** A web ReadableStream of CHUNK_BYTES chunks until `stopped()`, one per pull() (default highWaterMark: 1 chunk). */
export function webStreamSource(control: SourceControl): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (control.stopped()) {
        controller.close();
        control.onEnd();
        return;
      }
      control.sent.add(CHUNK_BYTES);
      controller.enqueue(WEB_CHUNK);
    },
  });
}

/** The streaming source `body` uses (generator bodies are gridwire.ts's own: they also serve the memory runs). */
export function streamingSource(body: Exclude<BulkBody, 'generator' | 'bytes'>, control: SourceControl): Readable | ReadableStream<Uint8Array> {
  return body === 'web-stream' ? webStreamSource(control) : readableSource(control);
}

/**
 * Reads `chunks` to their end, counting into `received`; resolves with the bytes read. `pipeline` reads them through
 * stream.pipeline() into a Node Writable; the others with `for await`. The chunks are views valid until the next
 * step: both readers only count them.
 */
export async function readBody(body: BulkBody, chunks: AsyncIterable<Uint8Array>, received: ByteMeter): Promise<number> {
  let bytes = 0;
  if (body === 'pipeline') {
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        bytes += chunk.length;
        received.add(chunk.length);
        callback();
      },
    });
    await pipeline(chunks, sink);
    return bytes;
  }
  for await (const chunk of chunks) {
    bytes += chunk.length;
    received.add(chunk.length);
  }
  return bytes;
}
