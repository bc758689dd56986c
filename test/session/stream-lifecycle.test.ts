/**
 * A stream's life in the session's table: ids odd for the dialer, even for the acceptor and strictly increasing; a
 * call the peer answers (or fails) before our request was fully sent settles, and its stream leaves the table; a call
 * that succeeds closes its stream without a RESET.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { createMemoryPair, createSession, Status } from '../../src/index.js';
import { utf8 } from '../../src/wire/bytes.js';
import { Flag, FrameType } from '../../src/wire/constants.js';
import { decodeReset, encodeEnd } from '../../src/wire/payloads.js';
import { Bytes, bytesService } from '../fixtures/bytes-service.js';
import { againstRawPeer, collect, sessionPair, tapFrames } from '../fixtures/sessions.js';
import { rejectsWithStatus, sleep, until, within, type RawFrame } from '../helpers.js';

const END_OF_REQUEST = Flag.MESSAGE_END | Flag.END_STREAM;

// ---------------------------------------------------------------- tests

void describe('stream lifecycle', () => {
  void test('stream ids are odd for the dialer, even for the acceptor, and strictly increasing', { timeout: 5000 }, async (t) => {
    const { dialer, acceptor, seenByDialer, seenByAcceptor } = await sessionPair(t);
    const method = utf8('test/echo');
    const fromDialer = [1, 2, 3].map(() => dialer.openStream(method));
    const fromAcceptor = [1, 2, 3].map(() => acceptor.openStream(method));
    assert.deepEqual(
      fromDialer.map((s) => s.id),
      [1, 3, 5],
    );
    assert.deepEqual(
      fromAcceptor.map((s) => s.id),
      [2, 4, 6],
    );
    const outcomes = [...fromDialer, ...fromAcceptor].map((stream, i) => {
      const done = collect(stream);
      stream.sendMessage(Uint8Array.of(i), true);
      return done;
    });
    const results = await within(Promise.all(outcomes), 2000, 'echoes');
    results.forEach((r, i) => {
      assert.deepEqual(r.messages, [Uint8Array.of(i)]);
      assert.equal(r.trailer?.status, Status.OK);
    });
    assert.deepEqual(
      seenByAcceptor.map((s) => s.stream.id),
      [1, 3, 5],
    );
    assert.deepEqual(
      seenByDialer.map((s) => s.stream.id),
      [2, 4, 6],
    );
    assert.ok(seenByAcceptor.every((s) => s.method === 'test/echo'));
    await until(() => dialer.streamCount === 0 && acceptor.streamCount === 0, 1000, 'stream tables empty');
  });

  // Regression found by review (fixed in 804d265: a settled call never leaves its stream open).
  void test('the peer answers (response + END_STREAM, or END with an error status) before our request was fully sent: the call settles and the stream table is empty', { timeout: 5000 }, async (t) => {
    // a small initial stream window and room for only 2 streams: a leaked slot would show at once
    const { raw, session } = againstRawPeer(t, 'dialer', {}, { initialStreamWindow: 16 * 1024, maxConcurrentStreams: 2 });
    await within(session.ready, 1000, 'handshake');
    const client = session.client(Bytes);
    const openOf = (id: number): Promise<RawFrame> => raw.waitFor((f) => f.type === FrameType.OPEN && f.streamId === id, 1000, `the OPEN of stream ${id}`);

    const answered = client.echo(new Uint8Array(100_000));
    await openOf(1);
    raw.send(FrameType.DATA, END_OF_REQUEST, 1, Uint8Array.of(7));
    assert.deepEqual(await within(answered, 1000, 'the early-answered call'), Uint8Array.of(7));
    assert.equal(session.core.streamCount, 0, 'the stream of the early-answered call is closed');

    const refused = client.echo(new Uint8Array(100_000));
    await openOf(3);
    raw.send(FrameType.END, 0, 3, encodeEnd(Status.PERMISSION_DENIED, 'not you'));
    await within(rejectsWithStatus(refused, Status.PERMISSION_DENIED, 'the early-failed call'), 1000, 'the early-failed call');
    assert.equal(session.core.streamCount, 0, 'the stream of the early-failed call is closed');

    // the peer is told to stop reading (RESET CANCELLED), and its 2 slots are free for new calls
    for (const id of [1, 3]) {
      const reset = await raw.waitFor((f) => f.type === FrameType.RESET && f.streamId === id, 1000, `RESET on stream ${id}`);
      assert.equal(decodeReset(reset.payload).status, Status.CANCELLED);
    }
    const next = [client.echo(Uint8Array.of(5)), client.echo(Uint8Array.of(6))];
    for (const id of [5, 7]) {
      await openOf(id);
      raw.send(FrameType.DATA, END_OF_REQUEST, id, Uint8Array.of(id));
    }
    assert.deepEqual(await within(Promise.all(next), 1000, 'two more calls'), [Uint8Array.of(5), Uint8Array.of(7)]);
    assert.equal(session.core.streamCount, 0);
  });

  // Guards the fix of a review finding (804d265); see the comment inside.
  void test('a successful unary call sends no RESET frame at all (100 calls: exactly 100 OPEN and 100 DATA from the caller)', { timeout: 5000 }, async (t) => {
    // Not a failure of the code before the fix (it never reset a settled call); it guards the fix, which resets a
    // stream still open when its call settles: a successful call's stream must be closed by then.
    const [a, b] = createMemoryPair();
    const fromCaller = tapFrames(a);
    const fromCallee = tapFrames(b);
    const caller = createSession(a, 'dialer');
    const callee = createSession(b, 'acceptor', { services: [bytesService()] });
    t.after(() => {
      caller.destroy();
      callee.destroy();
    });
    await within(Promise.all([caller.ready, callee.ready]), 1000, 'handshake');
    await sleep(5);
    fromCaller.length = 0;
    fromCallee.length = 0;
    const echo = caller.client(Bytes).echo;
    for (let i = 0; i < 100; i++) {
      const options = i % 2 === 0 ? { timeoutMs: 1000 } : { onTrailer: () => undefined };
      assert.deepEqual(await echo(Uint8Array.of(i), options), Uint8Array.of(i));
    }
    await sleep(20); // anything written late would show up now
    const count = (frames: RawFrame[], type: number): number => frames.filter((f) => f.type === type).length;
    assert.equal(count(fromCaller, FrameType.OPEN), 100);
    assert.equal(count(fromCaller, FrameType.DATA), 100);
    assert.equal(count(fromCaller, FrameType.RESET), 0, 'the caller sent RESET frames');
    assert.equal(fromCaller.length, 200, `the caller sent other frames: ${fromCaller.map((f) => f.type).join(',')}`);
    assert.equal(count(fromCallee, FrameType.DATA), 100);
    assert.equal(count(fromCallee, FrameType.RESET), 0, 'the callee sent RESET frames');
  });
});
