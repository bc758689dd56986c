/**
 * How an Inbox holds bulk chunks its reader has not taken yet (rpc/inbox.ts): large chunks, and a small one alone or
 * behind a large one (the small end of a frame that straddled two socket reads), are kept as they came, not copied;
 * small chunks behind a small one are packed together, so a flood of tiny frames makes few items and costs a copy
 * per byte, not per byte already packed. Credit is returned per item taken, with every byte's charge.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { Inbox, NO_INBOX_OWNER } from '../../src/rpc/inbox.js';
import type { Stream } from '../../src/session/stream.js';

/** A stream that records the credit consumed. */
function creditCounter(): { stream: Stream; consumed: number[] } {
  const consumed: number[] = [];
  const stream = { consume: (charge: number) => consumed.push(charge) } as unknown as Stream;
  return { stream, consumed };
}

async function drain(inbox: Inbox<Uint8Array>): Promise<Uint8Array[]> {
  inbox.end();
  const out: Uint8Array[] = [];
  for await (const chunk of inbox) out.push(chunk);
  return out;
}

void describe('Inbox: bulk chunks waiting for their reader', () => {
  void test('a small chunk alone, or behind a large one, is kept as it came (the same view, not a copy)', async () => {
    const { stream } = creditCounter();
    const inbox = new Inbox<Uint8Array>(stream, false, NO_INBOX_OWNER);
    const read = new Uint8Array(64 * 1024).fill(7);
    const small = read.subarray(0, 100);
    const large = read.subarray(100, 40_100);
    const tail = read.subarray(40_100, 40_200);
    inbox.push(small, small.length);
    inbox.push(large, large.length);
    inbox.push(tail, tail.length);
    const out = await drain(inbox);
    assert.equal(out.length, 3);
    assert.equal(out[0], small, 'alone: kept');
    assert.equal(out[1], large);
    assert.equal(out[2], tail, 'behind a large chunk: kept');
  });

  void test('small chunks behind a small one are packed into one item, in order, with all their credit', async () => {
    const { stream, consumed } = creditCounter();
    const inbox = new Inbox<Uint8Array>(stream, false, NO_INBOX_OWNER);
    const n = 20_000; // one-byte chunks: 20 000 bytes, past SMALL_CHUNK_BYTES (16 KiB)
    for (let i = 0; i < n; i++) inbox.push(Uint8Array.of(i & 0xff), 1);
    assert.ok(inbox.pending <= 3, `${inbox.pending} items for ${n} one-byte chunks`);
    const out = await drain(inbox);
    const joined = Buffer.concat(out);
    assert.equal(joined.length, n);
    for (let i = 0; i < n; i++) assert.equal(joined[i], i & 0xff);
    assert.equal(
      consumed.reduce((a, b) => a + b, 0),
      n,
      'every byte credited back once taken',
    );
  });

  void test('packing a flood of one-byte chunks copies linearly: 200 000 of them copy under 3 bytes each', async () => {
    // counted shim: the bytes Uint8Array.prototype.set copies while the chunks are pushed. A packed item copied whole
    // again for each byte would copy ~8 KiB per byte here (about 1.6 GB): it grows in place, doubling its room
    const { stream } = creditCounter();
    const inbox = new Inbox<Uint8Array>(stream, false, NO_INBOX_OWNER);
    const one = Uint8Array.of(1);
    const set = Uint8Array.prototype.set;
    let copied = 0;
    Uint8Array.prototype.set = function countedSet(this: Uint8Array, source: ArrayLike<number>, offset?: number) {
      copied += source.length;
      return set.call(this, source, offset);
    } as typeof set;
    try {
      for (let i = 0; i < 200_000; i++) inbox.push(one, 1);
    } finally {
      Uint8Array.prototype.set = set;
    }
    const out = await drain(inbox);
    assert.equal(Buffer.concat(out).length, 200_000);
    assert.ok(out.length <= 2 * Math.ceil(200_000 / (16 * 1024)) + 1, `${out.length} items`);
    assert.ok(copied < 3 * 200_000, `${copied} bytes copied to pack 200 000`);
  });
});
