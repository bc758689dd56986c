/**
 * maxConcurrentStreams, both ways. Ours: OPENs past the limit are RESET with the REFUSED flag (retry-safe) and a slot
 * frees only once its handler has returned and its stream closed, so a peer that never lets responses out, or cancels
 * calls whose async validators still run, cannot hold more streams than the limit. The peer's: a call waits for a free
 * slot, a peer announcing 0 fails calls at once retry-safe, and a queued call that turns out too big to send fails
 * alone.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type { StandardSchemaV1 } from '@standard-schema/spec';
import { createMemoryPair, createSession, defineService, serve, Status, unary } from '../../src/index.js';
import { msgpackCodec } from '../../src/rpc/codec.js';
import { utf8 } from '../../src/wire/bytes.js';
import { Flag, FrameType } from '../../src/wire/constants.js';
import { decodeReset, encodeCredit, encodeOpen, encodeReset } from '../../src/wire/payloads.js';
import { Bytes, bytesPath, bytesService } from '../fixtures/bytes-service.js';
import { againstRawPeer, pingBarrier, victim } from '../fixtures/sessions.js';
import { deferred, rejectsWithStatus, sleep, until, watch, within, type RawFrame } from '../helpers.js';
import { Echo } from '../fixtures/echo-service.js';

const ECHO = utf8('test.Echo/echo');
const HANG = utf8('test.Echo/hang');
const request = (value: unknown): Uint8Array => msgpackCodec.encode(value);
const END_OF_REQUEST = Flag.MESSAGE_END | Flag.END_STREAM;
const isRefused = (f: RawFrame): boolean => f.type === FrameType.RESET && (f.flags & Flag.REFUSED) !== 0;

// ---------------------------------------------------------------- tests

void describe('concurrency limit: the peer cannot exceed ours', () => {
  void test('T-D6 more concurrent OPENs than maxConcurrentStreams: RESET with the REFUSED flag; a freed slot is reused', { timeout: 5000 }, async (t) => {
    const v = await victim(t, { maxConcurrentStreams: 2 });
    for (const id of [1, 3, 5]) {
      v.raw.send(FrameType.OPEN, 0, id, encodeOpen(0, 0, HANG));
      v.raw.send(FrameType.DATA, END_OF_REQUEST, id, request(null));
    }
    const refused = await v.raw.waitFor((f) => f.type === FrameType.RESET && f.streamId === 5, 1000, 'RESET on stream 5');
    assert.equal(refused.flags & Flag.REFUSED, Flag.REFUSED);
    assert.equal(decodeReset(refused.payload).status, Status.UNAVAILABLE);
    assert.equal(v.raw.frames.filter((f) => f.type === FrameType.RESET && f.streamId !== 5).length, 0, 'streams 1 and 3 run');
    // cancel stream 1: once its handler has returned, its slot takes a new stream
    v.raw.send(FrameType.RESET, 0, 1, encodeReset(Status.CANCELLED, 'never mind'));
    await until(() => v.aborted.length === 1, 1000, 'the handler of stream 1 aborted');
    await sleep(10);
    const before = v.raw.frames.length;
    v.raw.send(FrameType.OPEN, 0, 7, encodeOpen(0, 0, ECHO));
    v.raw.send(FrameType.DATA, END_OF_REQUEST, 7, request(7));
    const answer = await v.raw.waitFor((f) => f.streamId === 7, 1000, 'a frame on stream 7', before);
    assert.equal(answer.type, FrameType.DATA, 'stream 7 is served, not refused');
    assert.equal(msgpackCodec.decode(answer.payload), 7);
  });

  // Regression found by review (fixed in 804d265: a peer stream's slot frees only once its handler returned and
  // the stream closed).
  void test('T-D3 a raw peer opening calls while granting OPEN window=1 (responses can never be sent): 10 accepted, the rest REFUSED; the server holds at most 10 streams', { timeout: 5000 }, async (t) => {
    const { raw, session: server } = againstRawPeer(t, 'acceptor', { services: [bytesService()], maxConcurrentStreams: 10 });
    await within(server.ready, 1000, 'handshake');
    let id = 1;
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 10; i++, id += 2) {
        raw.send(FrameType.OPEN, 0, id, encodeOpen(0, 1, bytesPath('big'))); // window 1: the 64 KiB response is stuck
        raw.send(FrameType.DATA, END_OF_REQUEST, id, Uint8Array.of(round));
      }
      // the handlers of this round have returned before the next round starts
      await pingBarrier(raw, BigInt(round + 1));
      assert.ok(server.core.streamCount <= 10, `round ${round}: the server holds ${server.core.streamCount} streams`);
    }
    const refused = raw.frames.filter(isRefused);
    assert.equal(refused.length, 40, '40 of 50 calls are refused');
    assert.deepEqual(
      refused.map((f) => f.streamId),
      Array.from({ length: 40 }, (_, i) => 21 + 2 * i),
      'exactly the calls past the first 10 are refused',
    );
    for (const f of refused) assert.equal(decodeReset(f.payload).status, Status.UNAVAILABLE);
    assert.equal(raw.ofType(FrameType.RESET).length, 40, 'the 10 accepted calls are not reset');
    assert.equal(server.core.streamCount, 10);

    // once the peer grants credit, the stuck responses complete and their slots serve new calls
    for (let s = 1; s <= 19; s += 2) raw.send(FrameType.CREDIT, 0, s, encodeCredit(64 * 1024));
    await until(() => raw.frames.filter((f) => f.type === FrameType.DATA && (f.flags & Flag.END_STREAM) !== 0).length === 10, 2000, '10 responses complete');
    await until(() => server.core.streamCount === 0, 1000, 'the server stream table empties');
    const from = raw.frames.length;
    raw.send(FrameType.OPEN, 0, 101, encodeOpen(0, 0, bytesPath('echo')));
    raw.send(FrameType.DATA, END_OF_REQUEST, 101, Uint8Array.of(42));
    const answer = await raw.waitFor((f) => f.streamId === 101, 1000, 'an answer on stream 101', from);
    assert.equal(answer.type, FrameType.DATA, 'a freed slot serves a new call');
    assert.deepEqual(answer.payload, Uint8Array.of(42));
  });

  // Regression found by review (fixed in 804d265).
  void test('T-D2 an async input validator still running when the call is cancelled moves to the cancelled pool: the next call is served, and the server never runs more than 2 x maxConcurrentStreams validators (maxConcurrentStreams 1)', { timeout: 5000 }, async (t) => {
    let running = 0;
    let maxRunning = 0;
    let finished = 0;
    const slowInput: StandardSchemaV1<unknown, string> = {
      '~standard': {
        version: 1,
        vendor: 'test',
        validate: async (value) => {
          running++;
          maxRunning = Math.max(maxRunning, running);
          await sleep(200);
          running--;
          finished++;
          return { value: String(value) };
        },
      },
    };
    const passThrough: StandardSchemaV1<unknown, string> = { '~standard': { version: 1, vendor: 'test', validate: (value) => ({ value: String(value) }) } };
    const Checked = defineService('review.Checked', { check: unary({ input: slowInput, output: passThrough }) });
    const [a, b] = createMemoryPair();
    const caller = createSession(a, 'dialer');
    const callee = createSession(b, 'acceptor', { maxConcurrentStreams: 1, services: [serve(Checked, { check: (text) => `ok ${text}` })] });
    t.after(() => {
      caller.destroy();
      callee.destroy();
    });
    await within(Promise.all([caller.ready, callee.ready]), 1000, 'handshake');
    const check = caller.client(Checked).check;

    const controller = new AbortController();
    const first = check('first', { signal: controller.signal });
    await until(() => running === 1, 1000, 'the first validator runs');
    controller.abort();
    await rejectsWithStatus(first, Status.CANCELLED, 'the cancelled call');
    // made at once: the first validator is still running (200 ms), in the cancelled pool: the only slot is free
    assert.equal(await within(check('second'), 1000, 'the second call'), 'ok second');
    await until(() => running === 0 && finished >= 2, 1000, 'the validators finish');
    assert.equal(maxRunning, 2, 'the server ran the cancelled validator and one more, never more');
    // the slot is free again once the first validator has finished
    assert.equal(await within(check('third'), 1000, 'the third call'), 'ok third');
    assert.equal(maxRunning, 2);
  });
});

void describe("concurrency limit: the peer's, and calls that cannot be sent fail alone", () => {
  // Regression found by review (fixed in 804d265).
  void test('a peer announcing MAX_CONCURRENT_STREAMS 0: calls fail at once with UNAVAILABLE (retry-safe), whether made before or after its HELLO', { timeout: 5000 }, async (t) => {
    const early = againstRawPeer(t, 'dialer', {}, { maxConcurrentStreams: 0 }, true);
    const queued = early.session.client(Bytes).echo(Uint8Array.of(1));
    early.sendHello();
    const e1 = await within(rejectsWithStatus(queued, Status.UNAVAILABLE, 'the call made before the HELLO'), 500, 'the call made before the HELLO');
    assert.equal(e1.retrySafe, true);

    const { raw, session } = againstRawPeer(t, 'dialer', {}, { maxConcurrentStreams: 0 });
    await within(session.ready, 1000, 'handshake');
    const e2 = await within(rejectsWithStatus(session.client(Bytes).echo(Uint8Array.of(2)), Status.UNAVAILABLE, 'the call'), 500, 'the call');
    assert.equal(e2.retrySafe, true);
    await sleep(10);
    assert.equal(raw.ofType(FrameType.OPEN).length + early.raw.ofType(FrameType.OPEN).length, 0, 'no OPEN was sent');
    assert.equal(session.core.streamCount, 0);
    assert.equal(early.session.core.streamCount, 0);
  });

  // Regression found by review (fixed in 804d265: queued OPENs re-checked against the peer's frame limit).
  void test("T-S9 a call queued behind the peer's concurrency limit whose OPEN exceeds the peer's MAX_FRAME_BYTES fails alone RESOURCE_EXHAUSTED; the connection stays up (and the non-queued case)", { timeout: 5000 }, async (t) => {
    const gate = deferred();
    let gatedStarted = 0;
    const [a, b] = createMemoryPair();
    // our own metadata limit allows the block; the peer's 64 KiB frame limit does not allow the OPEN that carries it
    const caller = createSession(a, 'dialer', { maxMetadataBytes: 1024 * 1024 });
    const callee = createSession(b, 'acceptor', { services: [bytesService(gate.promise, () => gatedStarted++)], maxConcurrentStreams: 1 });
    t.after(() => {
      caller.destroy();
      callee.destroy();
    });
    const client = caller.client(Bytes);
    const v = 'x'.repeat(40_000);
    const bigMetadata = { a: v, b: v };
    // both calls are made before the peer's HELLO has arrived: both queue, and with the peer's limit of 1 the second
    // waits behind the first, so its size is only checked once a slot frees
    const first = client.gated(Uint8Array.of(1));
    const big = watch(client.echo(Uint8Array.of(2), { metadata: bigMetadata }));
    await within(Promise.all([caller.ready, callee.ready]), 1000, 'handshake');
    await until(() => gatedStarted === 1, 1000, 'the first call is with its handler');
    assert.equal(big.settled, false, 'the big call waits for a slot');
    gate.resolve();
    assert.deepEqual(await within(first, 1000, 'the first call'), Uint8Array.of(1));
    const error = await within(rejectsWithStatus(big.promise, Status.RESOURCE_EXHAUSTED, 'the queued big call'), 1000, 'the queued big call');
    assert.equal(error.retrySafe, true, 'it never left the caller');
    assert.equal(caller.core.isOpen, true, 'the caller is still open');
    assert.equal(callee.core.isOpen, true, 'the callee is still open');
    assert.deepEqual(await within(client.echo(Uint8Array.of(3)), 1000, 'a call after it'), Uint8Array.of(3));

    // not queued: refused on the spot, and again the connection is fine
    const direct = await rejectsWithStatus(client.echo(Uint8Array.of(4), { metadata: bigMetadata }), Status.RESOURCE_EXHAUSTED, 'the direct big call');
    assert.equal(direct.retrySafe, true);
    assert.deepEqual(await within(client.echo(Uint8Array.of(5)), 1000, 'a call after that'), Uint8Array.of(5));
    assert.equal(caller.core.error, undefined);
    assert.equal(callee.core.error, undefined);
  });
});

void test('T-S9 queued calls open in order: a call made right after a cancel freed a slot waits behind the call queued before it', { timeout: 5000 }, async (t) => {
  const { raw, session } = againstRawPeer(t, 'dialer', {}, { maxConcurrentStreams: 1 });
  await within(session.ready, 1000, 'handshake');
  const client = session.client(Echo);
  const controller = new AbortController();
  const first = client.hang(null, { signal: controller.signal }).catch(() => undefined);
  const queued = client.echo('queued').catch(() => undefined); // waits for the peer's only slot
  await raw.waitFor((f) => f.type === FrameType.OPEN, 1000, 'the first OPEN');
  controller.abort(); // frees the slot
  const later = client.echo('later').catch(() => undefined); // made at once: must not overtake `queued`
  await raw.waitFor((f) => f.type === FrameType.OPEN && f.streamId !== 1, 1000, 'the next OPEN');
  const opens = raw.ofType(FrameType.OPEN).map((f) => f.streamId);
  assert.deepEqual(opens, [1, 3], `OPENs in the order the calls were made: ${opens.join(', ')}`);
  session.destroy();
  await Promise.all([first, queued, later]);
});

