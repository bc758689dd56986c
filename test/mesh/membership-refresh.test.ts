/**
 * When a membership source is read (src/mesh/membership/refresh-loop.ts): at start, every intervalMs, and sooner when
 * asked (watch events, refresh()) but never more than once per MIN_READ_GAP_MS however often it is asked; refresh()
 * resolves once a read that began after it has ended; stop() lets waiting callers go and leaves no timer.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { MIN_READ_GAP_MS, RefreshLoop } from '../../src/mesh/membership/refresh-loop.js';
import { within } from '../helpers.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A loop whose reads take `readMs`, recording when each began and ended. */
function recordingLoop(readMs: number, intervalMs = 60_000): { loop: RefreshLoop; reads: Array<{ start: number; end: number }> } {
  const reads: Array<{ start: number; end: number }> = [];
  const loop = new RefreshLoop(intervalMs, async () => {
    const read = { start: performance.now(), end: NaN };
    reads.push(read);
    await sleep(readMs);
    read.end = performance.now();
  });
  return { loop, reads };
}

void describe('membership: how often a source is read', () => {
  void test(`asked for reads back to back (a file rewritten constantly, a storm of refresh()): at most one read per ${MIN_READ_GAP_MS} ms`, async (t) => {
    const { loop, reads } = recordingLoop(5);
    t.after(() => loop.stop());
    loop.start();
    const until = performance.now() + 1_500;
    while (performance.now() < until) {
      void loop.now();
      await sleep(10);
    }
    loop.stop();
    assert.ok(reads.length >= 2, `the reads asked for happen: ${reads.length}`);
    assert.ok(reads.length <= 3, `${reads.length} reads in 1.5 s`);
    for (let i = 1; i < reads.length; i++) {
      const gap = reads[i]!.start - reads[i - 1]!.end;
      assert.ok(gap >= MIN_READ_GAP_MS - 5, `read ${i} began ${gap.toFixed(0)} ms after the previous one ended`);
    }
  });

  void test('a read asked for while one is under way comes after it, and now() resolves only once that later read has ended', async (t) => {
    let value = 1;
    const seen: number[] = [];
    const loop = new RefreshLoop(60_000, async () => {
      const read = value; // what the source says when the read begins
      await sleep(50);
      seen.push(read);
    });
    t.after(() => loop.stop());
    loop.start(); // the first read is under way
    value = 2;
    await within(loop.now(), MIN_READ_GAP_MS + 2_000, 'the read asked for');
    assert.deepEqual(seen, [1, 2], 'resolved after a read that saw the change');
  });

  void test('asked long after the last read: read at once', async (t) => {
    const { loop, reads } = recordingLoop(1);
    t.after(() => loop.stop());
    loop.start();
    await sleep(MIN_READ_GAP_MS + 50);
    const asked = performance.now();
    await within(loop.now(), 500, 'a read at once');
    assert.equal(reads.length, 2);
    assert.ok(reads[1]!.start - asked < 100);
  });

  void test('stop() lets a caller waiting for a read go, and leaves no timer', async (t) => {
    const { loop, reads } = recordingLoop(1);
    t.after(() => loop.stop());
    loop.start();
    await sleep(20);
    const waiting = loop.now(); // within the gap: waits for it
    assert.equal(loop.armed, true);
    loop.stop();
    await within(waiting, 100, 'the waiting caller let go');
    assert.equal(loop.armed, false);
    assert.equal(reads.length, 1);
  });
});
