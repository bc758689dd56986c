/**
 * How the session writes: frames made in one tick leave in a few transport writes (and every timer it started is
 * gone afterwards); while the transport reports backpressure, calls wait in their streams instead of piling up in the
 * transport; the FrameWriter's slab is let go on an idle connection, and the small frames it still sends (keepalive
 * PINGs) do not buy back a full 64 KiB one, while a busy connection grows back to 64 KiB slabs after a few refills.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { createMemoryPair, createSession } from '../../src/index.js';
import { FrameWriter } from '../../src/session/writer.js';
import { FrameType } from '../../src/wire/constants.js';
import { Bytes, bytesService } from '../fixtures/bytes-service.js';
import { Echo, echoService } from '../fixtures/echo-service.js';
import { countWrites, sleep, trackTimers, within } from '../helpers.js';

void describe('write coalescing and transport backpressure', () => {
  void test('64 calls issued in one tick share a few transport writes; nothing is left running afterwards', { timeout: 5000 }, async () => {
    const timersBefore = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const timers = trackTimers();
    try {
      const [a, b] = createMemoryPair();
      const callerWrites = countWrites(a);
      const calleeWrites = countWrites(b);
      const caller = createSession(a, 'dialer');
      const callee = createSession(b, 'acceptor', { services: [echoService()] });
      try {
        await within(Promise.all([caller.ready, callee.ready]), 1000, 'handshake');
        await sleep(5);
        callerWrites.reset();
        calleeWrites.reset();
        const echo = caller.client(Echo).echo;
        const results = await within(Promise.all(Array.from({ length: 64 }, (_, i) => echo(i))), 2000, '64 calls');
        assert.deepEqual(results, Array.from({ length: 64 }, (_, i) => i));
        assert.ok(callerWrites.writes <= 4, `64 calls took ${callerWrites.writes} transport writes on the caller`);
        assert.ok(calleeWrites.writes <= 4, `64 responses took ${calleeWrites.writes} transport writes on the callee`);
        // a deadline and a ping, so their timers are in play too
        assert.equal(await echo('timed', { timeoutMs: 1000 }), 'timed');
        await caller.ping();
        await within(caller.close(), 3000, 'graceful close');
        assert.equal(await within(callee.closed, 3000, 'callee closed'), undefined);
      } finally {
        caller.destroy();
        callee.destroy();
      }
      await sleep(5);
      assert.deepEqual(
        timers.live().filter((where) => where.includes('/src/')),
        [],
        'every timer the sessions started was cleared or has fired',
      );
    } finally {
      timers.stop();
    }
    const timersAfter = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    assert.ok(timersAfter <= timersBefore, `active timers: ${timersBefore} before, ${timersAfter} after`);
  });

  // Regression found by review (fixed in 804d265: small writes respect transport backpressure).
  void test('T-D5 while the transport reports backpressure, 10 000 small calls wait in their streams instead of piling up in the transport; after it resumes all complete', { timeout: 10_000 }, async (t) => {
    const huge = { connectionWindow: 0x7fff_ffff, initialStreamWindow: 0x7fff_ffff, maxConcurrentStreams: 100_000 };
    const [a, b] = createMemoryPair();
    const caller = createSession(a, 'dialer', huge);
    const callee = createSession(b, 'acceptor', { ...huge, services: [bytesService()] });
    t.after(() => {
      caller.destroy();
      callee.destroy();
    });
    await within(Promise.all([caller.ready, callee.ready]), 1000, 'handshake');
    a.setDeliveryPaused(true); // the peer stops reading: writes past the high-water mark report backpressure
    const echo = caller.client(Bytes).echo;
    const calls = Array.from({ length: 10_000 }, (_, i) => echo(new Uint8Array(1024).fill(i & 0xff)));
    await sleep(20);
    // the OPEN frames still leave (about 35 bytes a call); the 10 MiB of requests must not
    assert.ok(a.bufferedBytes < 1024 * 1024, `${a.bufferedBytes} bytes piled up in the transport`);
    a.setDeliveryPaused(false);
    const results = await within(Promise.all(calls), 8000, '10 000 calls');
    assert.equal(results.length, 10_000);
    results.forEach((r, i) => assert.ok(r.length === 1024 && r[0] === (i & 0xff), `response ${i}`));
    assert.equal(caller.core.streamCount, 0);
  });
});

void describe("the frame writer's slab", () => {
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
});
