/**
 * A receiver holds what it has not verified yet, not what it has: the pieces of an upload body that verifyChunks has
 * copied into chunks and written must be collectable while the body still runs. Its abortable wait once raced every
 * `next()` against one promise that lived as long as the body, which kept every piece reachable until the body ended
 * (a demo receiver's RSS grew by the whole dataset; a 10 GiB upload would have held 10 GiB).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

import { verifyChunks } from '../../src/cli/transfer/receive.js';
import type { ChunkSink } from '../../src/cli/transfer/sink.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const PIECE = 1024 * 1024;
const PIECES = 48;
/** Of the first half of the pieces, how many may still be reachable when the body is near its end: none, bar slack. */
const STILL_HELD_AT_MOST = 2;

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

void test('verifyChunks with a signal lets go of each piece once it is written: the first half of a 48 MiB body is collected before the body ends', { timeout: 20_000 }, async () => {
  const refs: WeakRef<Buffer>[] = [];
  let heldLate = -1;
  async function* body(): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < PIECES; i++) {
      if (i === PIECES - 4) {
        await new Promise((resolve) => setImmediate(resolve));
        gc();
        heldLate = refs.slice(0, PIECES / 2).filter((ref) => ref.deref() !== undefined).length;
      }
      const piece = Buffer.alloc(PIECE, i);
      refs.push(new WeakRef(piece));
      yield piece;
    }
  }
  const written: string[] = [];
  const sink: ChunkSink = {
    chunkSize: PIECE,
    keepsChunks: false,
    hashes: written,
    get verifiedBytes() { return written.length * PIECE; },
    truncate: () => Promise.resolve(),
    append: (_index, _bytes, hash) => { written.push(hash); return Promise.resolve(); },
    finish: () => Promise.reject(new Error('not used')),
    close: () => Promise.resolve(),
  };
  const expected = (index: number): Promise<string> => Promise.resolve(sha256(Buffer.alloc(PIECE, index)));
  const bytes = await verifyChunks(body(), sink, 0, expected, undefined, new AbortController().signal);
  assert.equal(bytes, PIECES * PIECE);
  assert.ok(heldLate >= 0 && heldLate <= STILL_HELD_AT_MOST, `${heldLate} of the first ${PIECES / 2} pieces were still reachable near the body's end`);
});
