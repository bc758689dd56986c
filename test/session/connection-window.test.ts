/**
 * The connection receive window that grows and shrinks with the bulk streams' windows (session/receive-budget.ts;
 * issue 14 review M2): a growth is CREDIT on stream 0 at once, a shrink is credit kept back from the next batches, a
 * growth while some credit is still to keep back cancels that much first (only the rest is sent), so the credit the
 * peer holds never runs above the largest size the window has had; and the window never grows past MAX_WINDOW
 * (2^31-1), which the peer would close the connection on (GW_ERR_FLOW_CONTROL), though connectionWindow and
 * maxBulkWindow may each be up to 2^31-1. The peer is modelled by the credit it holds: connectionWindow, plus every
 * CREDIT on stream 0, minus every DATA byte.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { ConnectionMemory } from '../../src/session/connection-memory.js';
import { MemoryBudget } from '../../src/session/memory-budget.js';
import { ReceiveBudget } from '../../src/session/receive-budget.js';
import { bulkCreditBatch, WindowTuner } from '../../src/session/window-tuner.js';
import { FrameType, MAX_WINDOW } from '../../src/wire/constants.js';
import { decodeCredit } from '../../src/wire/payloads.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** A ReceiveBudget and the connection credit its peer holds. */
class Connection {
  peerCredit: number;
  maxPeerCredit: number;
  credits: number[] = [];
  readonly budget: ReceiveBudget;

  constructor(connectionWindow: number) {
    this.peerCredit = connectionWindow;
    this.maxPeerCredit = connectionWindow;
    this.budget = new ReceiveBudget(
      { connectionWindow },
      {
        writeFrame: (type, _flags, streamId, payload) => {
          assert.equal(type, FrameType.CREDIT);
          assert.equal(streamId, 0);
          const increment = decodeCredit(payload!);
          this.credits.push(increment);
          this.peerCredit += increment;
          if (this.peerCredit > this.maxPeerCredit) this.maxPeerCredit = this.peerCredit;
        },
      },
    );
  }

  /** The peer sends `bytes` of DATA, and we handle them (their credit goes back, batched). */
  data(bytes: number): void {
    assert.ok(bytes <= this.peerCredit, 'the peer sends only what its credit allows');
    this.peerCredit -= bytes;
    this.budget.takeData(bytes);
    this.budget.giveBack(bytes);
  }
}

void describe('the connection window grows and shrinks with the bulk windows', () => {
  void test('a growth is CREDIT on stream 0 at once; a shrink keeps credit back from the next batches, then batches flow again', () => {
    const c = new Connection(16 * MiB);
    c.budget.grow(8 * MiB);
    assert.deepEqual(c.credits, [8 * MiB], 'the growth is sent at once');
    assert.equal(c.peerCredit, 24 * MiB);
    c.budget.shrink(8 * MiB);
    assert.deepEqual(c.credits, [8 * MiB], 'a shrink sends nothing');
    // batches of a quarter of the size (16 MiB again: 4 MiB): the first two are kept back whole
    for (let i = 0; i < 4; i++) c.data(2 * MiB);
    assert.deepEqual(c.credits, [8 * MiB], 'the first 8 MiB handled are kept back');
    assert.equal(c.peerCredit, 16 * MiB);
    for (let i = 0; i < 2; i++) c.data(2 * MiB);
    assert.deepEqual(c.credits, [8 * MiB, 4 * MiB], 'then credit goes back in batches again');
    assert.equal(c.peerCredit + 0, 16 * MiB);
  });

  void test('a growth while credit is still to keep back cancels it first and sends only the rest: the peer holds no more than the largest size', () => {
    const c = new Connection(16 * MiB);
    c.budget.grow(32 * MiB); // a stream grows to 32 MiB on a long link
    c.budget.shrink(32 * MiB); // it closes mid-transfer: 32 MiB to keep back
    c.budget.grow(8 * MiB); // the next stream grows before any batch kept it back
    assert.deepEqual(c.credits, [32 * MiB], 'no CREDIT: the peer already holds that credit');
    assert.equal(c.peerCredit, 48 * MiB);
    c.budget.grow(32 * MiB); // 24 MiB still to keep back: 8 MiB sent
    assert.deepEqual(c.credits, [32 * MiB, 8 * MiB]);
    assert.equal(c.peerCredit, 56 * MiB, 'connectionWindow + the 40 MiB of growth held now');
    // many grown streams closed one after the other, each before the batches kept its growth back
    for (let i = 0; i < 30; i++) {
      c.budget.shrink(i === 0 ? 40 * MiB : 16 * MiB);
      c.budget.grow(16 * MiB);
      c.data(MiB);
    }
    assert.ok(c.maxPeerCredit <= 56 * MiB, `the peer held up to ${c.maxPeerCredit / MiB} MiB of credit, the window was never over 56 MiB`);
    c.budget.shrink(16 * MiB); // the last stream closes
    // the peer goes on sending: once the batches have kept everything back, it holds no more than connectionWindow
    for (let i = 0; i < 256; i++) c.data(Math.min(MiB, c.peerCredit));
    assert.ok(c.peerCredit <= 16 * MiB, `back to connectionWindow: the peer holds ${c.peerCredit / MiB} MiB`);
  });

  void test('never past MAX_WINDOW: canGrow refuses a growth that would take the window there', () => {
    const c = new Connection(MAX_WINDOW - 8 * MiB);
    assert.equal(c.budget.canGrow(8 * MiB), true);
    assert.equal(c.budget.canGrow(8 * MiB + 1), false);
    c.budget.grow(8 * MiB);
    assert.equal(c.peerCredit, MAX_WINDOW);
    assert.equal(c.budget.canGrow(1), false);
    c.budget.shrink(4 * MiB);
    assert.equal(c.budget.canGrow(4 * MiB), true, 'a shrink makes room again (the kept-back credit is cancelled first)');
    c.budget.grow(4 * MiB);
    assert.equal(c.peerCredit, MAX_WINDOW);
  });

  void test('connectionWindow 2^31-1 (a valid option): a bulk stream on a long link keeps its window, and the peer is never granted more than MAX_WINDOW', () => {
    const c = new Connection(MAX_WINDOW);
    const memory = new ConnectionMemory({ maxReassemblyBytes: 0, maxQueuedSendBytes: 0, connectionWindow: MAX_WINDOW, maxBulkWindow: 32 * MiB }, new MemoryBudget(1024 * MiB));
    let now = 0;
    const tuner = new WindowTuner({ bulkWindow: 256 * KiB, maxBulkWindow: 32 * MiB }, memory, c.budget, () => now);
    const tuned = tuner.track(256 * KiB)!;
    let window = 256 * KiB;
    // epochs of about one 10 ms loop, the reader waiting for data: a window that would double every epoch (40 epochs:
    // past 512 MiB of data, where the connection returns its first batch of credit)
    for (let epoch = 0; epoch < 40; epoch++) {
      const batch = bulkCreditBatch(window);
      const batches = Math.ceil(window / batch);
      for (let i = 0; i < batches; i++) {
        tuned.readerWaits();
        now += 0.4;
        if (i === 1) {
          now += 10;
          tuned.dataArrived(0);
        } else tuned.dataArrived(Number.MAX_SAFE_INTEGER);
        c.data(batch);
        window += tuned.credit(batch, window);
        assert.ok(c.peerCredit <= MAX_WINDOW, `the peer was granted ${c.peerCredit} bytes of connection credit, past MAX_WINDOW: it would close with FLOW_CONTROL`);
      }
    }
    assert.equal(window, 256 * KiB, 'no room to grow: the stream keeps its window');
    assert.equal(memory.heldBytes, 0, 'nothing reserved for a growth refused');
    assert.equal(tuner.stats.growths, 0);
  });
});
