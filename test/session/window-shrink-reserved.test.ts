/**
 * A bulk window that shrinks stays reserved until its credit is actually kept back (session/window-tuner.ts; issue 14
 * review M1). A shrink is credit kept back from the batches the reader's consumption returns, so until then the peer
 * still holds that credit and a reader that stops may be made to hold its bytes: the growth must stay reserved (in the
 * connection's memory and the process's memoryBudget) and in the connection window until each byte of it is kept
 * back, whatever made the window shrink — a credit loop under 1 ms (all growth given back: what a hostile peer answering
 * one CREDIT fast provokes after growing the window on slow loops) or quiet epochs (an eighth at a time). Driven batch
 * by batch on the tuner's own clock; after every batch, what is reserved is exactly what the window holds beyond where
 * it started.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { ConnectionMemory } from '../../src/session/connection-memory.js';
import { MemoryBudget } from '../../src/session/memory-budget.js';
import { bulkCreditBatch, WindowTuner, type GrowingWindow } from '../../src/session/window-tuner.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const START = 256 * KiB;
const MAX_BULK = 32 * MiB;
/** What the slow loops take (ms): a long link's, or a hostile peer's answers. */
const SLOW_LOOP_MS = 10;

/** A connection window that records how far it has grown (receive-budget.ts has its own tests). */
class ConnectionGrowth implements GrowingWindow {
  grown = 0;
  canGrow(): boolean {
    return true;
  }
  grow(bytes: number): void {
    this.grown += bytes;
  }
  shrink(bytes: number): void {
    this.grown -= bytes;
  }
}

/** One tuned bulk stream on a connection whose memory shares `budget`, fed batch by batch. */
class Receiver {
  now = 0;
  window = START;
  readonly connection = new ConnectionGrowth();
  readonly memory: ConnectionMemory;
  readonly tuner: WindowTuner;
  readonly tuned;

  constructor(readonly budget: MemoryBudget) {
    this.memory = new ConnectionMemory({ maxReassemblyBytes: 0, maxQueuedSendBytes: 0, connectionWindow: 16 * MiB, maxBulkWindow: MAX_BULK }, budget);
    this.tuner = new WindowTuner({ bulkWindow: START, maxBulkWindow: MAX_BULK }, this.memory, this.connection, () => this.now);
    const tuned = this.tuner.track(START);
    assert.ok(tuned !== undefined);
    this.tuned = tuned;
  }

  /**
   * One batch of credit returned: the reader waited (or was busy) `stepMs`; on `timeLoopMs` the first byte the pending
   * CREDIT allowed arrives that long after it (a loop is timed), else no loop is.
   */
  batch(stepMs: number, waits: boolean, timeLoopMs?: number): void {
    if (waits) this.tuned.readerWaits();
    this.now += stepMs;
    if (timeLoopMs !== undefined) {
      this.now += timeLoopMs;
      this.tuned.dataArrived(0);
    } else this.tuned.dataArrived(Number.MAX_SAFE_INTEGER);
    this.window += this.tuned.credit(bulkCreditBatch(this.window), this.window);
    this.assertAllReserved();
  }

  /** Grows the window to maxBulkWindow on slow loops, a reader waiting for data. */
  growToMax(): void {
    for (let epoch = 0; this.window < MAX_BULK; epoch++) {
      assert.ok(epoch < 100, `the window did not grow to ${MAX_BULK}: ${this.window}`);
      // one loop timed per epoch (its second batch): an epoch takes about one loop, well under GROWTH_FACTOR of them
      const batches = Math.ceil(this.window / bulkCreditBatch(this.window));
      for (let i = 0; i < batches; i++) this.batch(0.4, true, i === 1 ? SLOW_LOOP_MS : undefined);
    }
  }

  /** The window's growth is reserved, in the memory budgets and the connection window, to the byte. */
  assertAllReserved(): void {
    const held = this.window - START;
    assert.equal(this.memory.heldBytes, held, `the window holds ${held} bytes of growth (the peer's credit), but ${this.memory.heldBytes} are reserved`);
    assert.equal(this.connection.grown, held, 'the connection window holds the same growth');
    assert.equal(this.tuner.stats.grownBytes, held, 'stats say the growth held');
  }
}

void describe('a shrinking bulk window stays reserved until its credit is kept back', () => {
  void test('grown on slow loops, then one CREDIT answered in under 1 ms: the growth stays reserved while the peer holds the credit, and another connection cannot take it', () => {
    const budget = new MemoryBudget(48 * MiB);
    const receiver = new Receiver(budget);
    receiver.growToMax();
    const grown = receiver.window - START;
    // the peer answers a CREDIT in 0.1 ms: the path looks local, the growth is given back at the next epoch's end
    const shrinksBefore = receiver.tuner.stats.shrinks;
    for (let i = 0; receiver.tuner.stats.shrinks === shrinksBefore; i++) {
      assert.ok(i < 1000, 'the sub-ms loop gave nothing back');
      receiver.batch(0.4, true, 0.1);
    }
    // the reader stops here: the peer still holds nearly all the grown credit (at most one batch was kept back)
    assert.ok(receiver.window - START >= grown - MiB, `the window kept back ${grown - (receiver.window - START)} bytes in one batch`);
    const other = new ConnectionMemory({ maxReassemblyBytes: 0, maxQueuedSendBytes: 0, connectionWindow: 16 * MiB, maxBulkWindow: MAX_BULK }, budget);
    assert.equal(other.reserveWindowGrowth(32 * MiB), false, 'another connection reserved what the peer may still make this one hold');
    // the reader goes on: each batch keeps back its credit and releases that much, down to where it started
    for (let i = 0; receiver.window > START; i++) {
      assert.ok(i < 1000, 'the window did not shrink back');
      receiver.batch(0.4, true, 0.1);
    }
    assert.equal(receiver.memory.heldBytes, 0);
    assert.equal(budget.used, 0);
    assert.equal(other.reserveWindowGrowth(32 * MiB), true, 'what was kept back is free for others');
  });

  void test('quiet epochs shrink the window by eighths: each eighth stays reserved until kept back, and a stream closed meanwhile gives back all of it', () => {
    const budget = new MemoryBudget(1024 * MiB);
    const receiver = new Receiver(budget);
    receiver.growToMax();
    // the reader slows for good: each epoch takes far more than SHRINK_FACTOR loops, and it never waits
    const shrinksBefore = receiver.tuner.stats.shrinks;
    for (let i = 0; receiver.tuner.stats.shrinks === shrinksBefore; i++) {
      assert.ok(i < 10_000, 'quiet epochs never shrank the window');
      receiver.batch(20, false);
    }
    // an eighth of 32 MiB (4 MiB) to keep back from 1 MiB batches: 3 MiB of it still with the peer
    assert.equal(receiver.window, MAX_BULK - MiB);
    receiver.batch(20, false);
    assert.equal(receiver.window, MAX_BULK - 2 * MiB);
    // the stream closes with 2 MiB still to keep back: everything goes back
    receiver.tuned.release();
    assert.equal(receiver.memory.heldBytes, 0);
    assert.equal(budget.used, 0);
    assert.equal(receiver.connection.grown, 0);
    assert.equal(receiver.tuner.stats.grownBytes, 0);
    assert.equal(receiver.tuner.stats.streams, 0);
  });
});
