/**
 * The FrameWriter's slab: an idle connection lets it go, and the small frames it still sends (keepalive PINGs) do not
 * buy back a full 64 KiB one; a busy connection grows back to 64 KiB slabs after a few refills.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FrameType } from '../src/wire/constants.js';
import { FrameWriter } from '../src/session/writer.js';

void test('after release(), a PING allocates a small slab; refills double it up to 64 KiB; frames stay intact', () => {
  const writer = new FrameWriter();
  writer.frame(FrameType.PING, 0, 0, new Uint8Array(8));
  writer.take();
  writer.release();
  assert.equal(writer.target.length, 0, 'no slab held once released');
  writer.frame(FrameType.PING, 0, 0, new Uint8Array(8));
  assert.ok(writer.target.length <= 2048, `a keepalive PING after release allocates ${writer.target.length} bytes`);
  const sizes = new Set<number>();
  let written = 0;
  for (let i = 0; i < 200; i++) {
    writer.frame(FrameType.DATA, 0, 1, new Uint8Array(1000).fill(i));
    sizes.add(writer.target.length);
    written += 1010;
  }
  assert.equal(Math.max(...sizes), 64 * 1024, `slab sizes used: ${[...sizes].join(', ')}`);
  const out = writer.take();
  const total = out.reduce((n, chunk) => n + chunk.length, 0);
  assert.equal(total, 18 + written, 'every byte queued is handed out once');
});
