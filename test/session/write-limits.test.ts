/**
 * What the write side does for a peer that reads slowly, not at all, or grants credit a byte at a time: frames queued
 * while the transport asks us to wait are bounded (outbox.ts), no DATA frame is smaller than the floor unless it ends
 * its item (send-queue.ts), and a transport that makes no progress closes the connection (write-stall.ts).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { createMemoryPair, createSession, ProtocolErrorCode } from '../../src/index.js';
import { Outbox, type OutboxEvents } from '../../src/session/outbox.js';
import { QueueStep, SendQueue, type QueueOutput } from '../../src/session/send-queue.js';
import { WriteStallWatch } from '../../src/session/write-stall.js';
import type { Transport } from '../../src/transport/transport.js';
import { Flag, FrameType, MIN_DATA_FRAME_BYTES } from '../../src/wire/constants.js';
import { encodeCredit, encodeOpen } from '../../src/wire/payloads.js';
import { Bytes, bytesPath, bytesService } from '../fixtures/bytes-service.js';
import { againstRawPeer, pingBarrier } from '../fixtures/sessions.js';
import { sleep, until, within } from '../helpers.js';

const KiB = 1024;

/** A transport that takes every write and always asks to wait (a peer that never reads). */
function blockedTransport(): Transport & { written: number } {
  const t = {
    written: 0,
    peer: { transport: 'memory', address: 'memory://test' },
    attach() {},
    write(chunks: readonly Uint8Array[]) {
      for (const c of chunks) t.written += c.length;
      return false;
    },
    end() {},
    destroy() {},
  };
  return t;
}

function outboxFor(transport: Transport, events: Partial<OutboxEvents> = {}): Outbox {
  const limits = { maxBlockedWriteFrames: 1000, maxBlockedWriteBytes: 4 * 1024 * 1024, writeStallTimeoutMs: 0 };
  return new Outbox(transport, limits, { onBlockedOverflow() {}, onWriteStall() {}, ...events });
}

/** A SendQueue's output with `allowance` connection credit; records the DATA frames written. */
function queueOutput(allowance: number, dataFloor = MIN_DATA_FRAME_BYTES): QueueOutput & { frames: number[] } {
  const out = {
    frames: [] as number[],
    dataAllowance: allowance,
    dataFloor,
    writeData(_flags: number, _id: number, payload: Uint8Array) {
      out.frames.push(payload.length);
      out.dataAllowance -= payload.length;
    },
    writeFrame() {},
  };
  return out;
}

const noBudget = { reserveQueuedSend: () => undefined, releaseQueuedSend() {} };

void describe('write limits', () => {
  void test('T-D1 frames queued while the transport asks us to wait: past 1 000 the session is told once, the writer never throws, and what follows is dropped until a drain', () => {
    const transport = blockedTransport();
    const overflows: string[] = [];
    const outbox = outboxFor(transport, { onBlockedOverflow: (m) => overflows.push(m) });
    outbox.writeFrame(FrameType.PING, 0, 0, new Uint8Array(8));
    outbox.flush(); // the transport asks us to wait from now on
    const reset = new Uint8Array(40);
    for (let i = 0; i < 1000; i++) outbox.writeFrame(FrameType.RESET, 0, 2 * i + 1, reset);
    assert.deepEqual(overflows, []);
    // our own OPENs are not counted: our application opens them, within the peer's concurrency limit
    for (let i = 0; i < 2000; i++) outbox.beginFrame(FrameType.OPEN, 0, 2 * i + 1, 20);
    assert.deepEqual(overflows, []);
    outbox.writeFrame(FrameType.RESET, 0, 1, reset);
    outbox.writeFrame(FrameType.RESET, 0, 3, reset);
    assert.equal(overflows.length, 1);
    assert.match(overflows[0]!, /queue 1001 frames .* maxBlockedWriteFrames 1000/);
    outbox.flush();
    const written = transport.written;
    for (let i = 0; i < 10_000; i++) outbox.writeFrame(FrameType.RESET, 0, 1, reset);
    outbox.flush();
    assert.equal(transport.written, written, 'frames after the overflow are dropped');
  });

  void test('T-D1 only what the peer drove counts: our own cancels, ENDs and PINGs while the transport is blocked never close the connection on ourselves', () => {
    const transport = blockedTransport();
    const overflows: string[] = [];
    // an accepting side: our streams are even, the peer's odd
    const outbox = new Outbox(transport, { maxBlockedWriteFrames: 10, maxBlockedWriteBytes: 4 * 1024 * 1024, writeStallTimeoutMs: 0 }, {
      onBlockedOverflow: (m) => overflows.push(m),
      onWriteStall() {},
    }, 0);
    outbox.writeFrame(FrameType.PING, 0, 0, new Uint8Array(8));
    outbox.flush(); // the transport asks us to wait from now on
    for (let i = 1; i <= 2000; i++) {
      outbox.writeFrame(FrameType.RESET, 0, 2 * i, new Uint8Array(8)); // our cancels
      outbox.writeFrame(FrameType.END, 0, 2 * i, new Uint8Array(4)); // our requests' ends
    }
    for (let i = 0; i < 100; i++) outbox.writeFrame(FrameType.PING, 0, 0, new Uint8Array(8)); // our pings
    assert.deepEqual(overflows, [], 'nothing of ours is counted');
    for (let i = 0; i < 10; i++) outbox.writeFrame(FrameType.PING, Flag.ACK, 0, new Uint8Array(8)); // answers to the peer
    assert.deepEqual(overflows, []);
    outbox.writeFrame(FrameType.RESET, 0, 1, new Uint8Array(8)); // a reset of the peer's stream: the 11th
    assert.equal(overflows.length, 1);
  });

  void test('T-D1 the count starts again when the transport drains; bytes count too', () => {
    const transport = blockedTransport();
    const overflows: string[] = [];
    const outbox = new Outbox(transport, { maxBlockedWriteFrames: 1000, maxBlockedWriteBytes: 64 * KiB, writeStallTimeoutMs: 0 }, {
      onBlockedOverflow: (m) => overflows.push(m),
      onWriteStall() {},
    });
    outbox.writeFrame(FrameType.PING, 0, 0, new Uint8Array(8));
    outbox.flush();
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 900; i++) outbox.writeFrame(FrameType.CREDIT, 0, 1, new Uint8Array(4));
      outbox.drained();
      outbox.flush(); // blocked again
    }
    assert.deepEqual(overflows, []);
    for (let i = 0; i < 20; i++) outbox.writeFrame(FrameType.END, 0, 1, new Uint8Array(4000));
    assert.equal(overflows.length, 1);
    assert.match(overflows[0]!, /maxBlockedWriteBytes 65536/);
  });

  void test('T-D4 no DATA below the floor unless it ends its item: 1-byte credit waits, the rest of an item goes whole, a small window announced lowers the floor', () => {
    const q = new SendQueue(noBudget);
    q.pushData(new Uint8Array(3000), Flag.MESSAGE_END);
    const credit = { sendWindow: 1, sendMessageWindow: 10, sendFloor: MIN_DATA_FRAME_BYTES };
    const out = queueOutput(1 << 20);
    assert.equal(q.writeNext(1, credit, out), QueueStep.STREAM_BLOCKED, '1 byte of stream credit');
    credit.sendWindow = 1023;
    assert.equal(q.writeNext(1, credit, out), QueueStep.STREAM_BLOCKED, '1 023 bytes');
    credit.sendWindow = 1024;
    assert.equal(q.writeNext(1, credit, out), QueueStep.WROTE);
    credit.sendWindow = 1500;
    const conn = queueOutput(10);
    assert.equal(q.writeNext(1, credit, conn), QueueStep.CONNECTION_BLOCKED, '10 bytes of connection credit');
    assert.equal(q.writeNext(1, credit, out), QueueStep.WROTE);
    credit.sendWindow = 476; // exactly the rest of the message: it is final, so it may be small
    assert.equal(q.writeNext(1, credit, out), QueueStep.WROTE);
    assert.deepEqual(out.frames, [1024, 1500, 476]);
    // a peer that announced a 100-byte window gets 100-byte frames: it can never grant more at once
    const small = new SendQueue(noBudget);
    small.pushData(new Uint8Array(250), Flag.MESSAGE_END);
    const smallOut = queueOutput(1 << 20);
    const smallCredit = { sendWindow: 100, sendMessageWindow: 1, sendFloor: 100 };
    assert.equal(small.writeNext(1, smallCredit, smallOut), QueueStep.WROTE);
    assert.deepEqual(smallOut.frames, [100]);
  });

  void test('T-D5 a SendQueue reserves what waits and gives it back as it is written or dropped; a full budget refuses a push', () => {
    let reserved = 0;
    const budget = {
      reserveQueuedSend: (n: number) => (reserved + n > 10_000 ? 'full' : ((reserved += n), undefined)),
      releaseQueuedSend: (n: number) => void (reserved -= n),
    };
    const q = new SendQueue(budget);
    assert.equal(q.pushData(new Uint8Array(4000), Flag.MESSAGE_END), undefined);
    assert.equal(q.pushData(new Uint8Array(4000), 0), undefined);
    assert.equal(q.pushData(new Uint8Array(4000), 0), 'full');
    assert.equal(reserved, 8000 + 2 * 64);
    const credit = { sendWindow: 6000, sendMessageWindow: 1, sendFloor: MIN_DATA_FRAME_BYTES };
    q.writeNext(1, credit, queueOutput(1 << 20));
    assert.equal(reserved, 4000 + 64, 'the written message gave back its bytes and its item');
    q.writeNext(1, credit, queueOutput(1 << 20));
    assert.equal(reserved, 2000 + 64);
    q.drop();
    assert.equal(reserved, 0);
  });

  void test('T-D5 WriteStallWatch: a whole timeout without progress is a stall; a drain or fewer bytes waiting is progress', async () => {
    const stalls: number[] = [];
    let pending = 1000;
    const watch = new WriteStallWatch(60, () => pending, (ms) => stalls.push(ms));
    watch.blocked();
    await sleep(40);
    pending = 900; // slow, but moving
    await sleep(50);
    assert.deepEqual(stalls, []);
    watch.drained();
    await sleep(80);
    assert.deepEqual(stalls, [], 'drained: nothing to watch');
    watch.blocked();
    await until(() => stalls.length === 1, 1000, 'the stall');
    assert.ok(stalls[0]! >= 60);
    watch.stop();
    const off = new WriteStallWatch(0, () => undefined, () => assert.fail('0 disables the watch'));
    off.blocked();
    await sleep(20);
  });

  void test('T-X7 a peer that stops reading while a response waits: its session closes with GW_ERR_WRITE_STALL after writeStallTimeoutMs, and the caller\'s call fails', { timeout: 10_000 }, async (t) => {
    const [a, b] = createMemoryPair();
    const caller = createSession(a, 'dialer');
    const callee = createSession(b, 'acceptor', { writeStallTimeoutMs: 200, services: [bytesService()] });
    t.after(() => {
      caller.destroy();
      callee.destroy();
    });
    await within(Promise.all([caller.ready, callee.ready]), 1000, 'handshake');
    b.setDeliveryPaused(true); // the caller reads nothing the callee writes
    // the request fits the callee's window (the credit it returns never arrives); the response is more than the
    // transport holds before it asks to wait
    const call = caller.client(Bytes).echo(new Uint8Array(200 * KiB));
    call.catch(() => undefined);
    const error = await within(callee.core.closed, 3000, 'the stalled session to close');
    assert.equal((error as { code?: string } | undefined)?.code, ProtocolErrorCode.WRITE_STALL);
    assert.match(String(error?.message), /no write progress for \d+ ms/);
    await assert.rejects(call);
  });
  for (const order of ['stream CREDIT, then connection CREDIT', 'connection CREDIT, then stream CREDIT']) {
    void test(`T-D5 data floor: zero windows, a 500-byte response, the peer grants exactly 500 (${order}): the response is written (credit covering what remains of the item is enough)`, { timeout: 5_000 }, async (t) => {
      const { raw } = againstRawPeer(t, 'acceptor', { services: [bytesService()] }, { connectionWindow: 0, initialStreamWindow: 0 });
      raw.send(FrameType.OPEN, 0, 1, encodeOpen(0, 0, bytesPath('echo')));
      raw.send(FrameType.DATA, Flag.MESSAGE_END | Flag.END_STREAM, 1, new Uint8Array(500));
      await pingBarrier(raw, 1n);
      await sleep(10); // the handler has answered; its response waits for credit
      assert.equal(raw.ofType(FrameType.DATA).length, 0, 'nothing written without credit');
      const stream = (): void => raw.send(FrameType.CREDIT, 0, 1, encodeCredit(500));
      const connection = (): void => raw.send(FrameType.CREDIT, 0, 0, encodeCredit(500));
      if (order.startsWith('stream')) {
        stream();
        await pingBarrier(raw, 2n);
        connection();
      } else {
        connection();
        await pingBarrier(raw, 2n);
        stream();
      }
      const data = await raw.waitFor((f) => f.type === FrameType.DATA && f.streamId === 1, 2000, 'the 500-byte response');
      assert.equal(data.payload.length, 500);
    });
  }
});
