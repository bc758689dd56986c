/**
 * A peer that breaks the protocol (a RawPeer writing frames by hand over a memory pair): DATA on a stream never opened,
 * CREDIT of 0, DATA beyond the stream window, OPEN with the wrong parity or a non-increasing id close the connection
 * with the matching GOAWAY and ProtocolError; malformed metadata in an OPEN resets only that stream; and once a
 * connection error closed the session, nothing the peer sends afterwards gets a reply. Flow-control violations of
 * message streams are in flow-control.test.ts, a peer over our stream limit in concurrency-limit.test.ts. A dialer
 * still being admitted (T-Z3: its token under check) that sends anything but GOAWAY is cut off with nothing served.
 */
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';

import { createMemoryPair, createSession, Status } from '../../src/index.js';
import { msgpackCodec } from '../../src/rpc/codec.js';
import { utf8 } from '../../src/wire/bytes.js';
import { ConnectionCode, connectionCodeName, Flag, FrameType } from '../../src/wire/constants.js';
import { ProtocolError, ProtocolErrorCode } from '../../src/wire/errors.js';
import { decodeGoaway, decodeReset, encodeCredit, encodeGoaway, encodeOpen, encodePing } from '../../src/wire/payloads.js';
import { encodeFrame } from '../../src/wire/frame.js';
import { echoService } from '../fixtures/echo-service.js';
import { pingBarrier, tapFrames, victim, type Victim } from '../fixtures/sessions.js';
import { deferred, helloFrame, RawPeer, sleep, until, within } from '../helpers.js';

/** Asserts that the victim closed the connection with GOAWAY `code` and a ProtocolError `protocolCode`. */
async function assertConnectionError(v: Victim, code: ConnectionCode, protocolCode: ProtocolErrorCode): Promise<void> {
  const goaway = await v.raw.waitFor((f) => f.type === FrameType.GOAWAY, 1000, 'GOAWAY');
  const decoded = decodeGoaway(goaway.payload);
  assert.equal(decoded.code, code, `GOAWAY ${connectionCodeName(decoded.code)}: ${decoded.message}`);
  const error = await within(v.session.closed, 3000, 'the victim closes');
  assert.ok(error instanceof ProtocolError, `closed with ${String(error)}`);
  assert.equal(error.code, protocolCode);
  await within(v.raw.ended.promise, 1000, 'the raw peer sees the end');
}

const ECHO = utf8('test.Echo/echo');
const HANG = utf8('test.Echo/hang');
const request = (value: unknown): Uint8Array => msgpackCodec.encode(value);
const END_OF_REQUEST = Flag.MESSAGE_END | Flag.END_STREAM;

// ---------------------------------------------------------------- tests

void describe('protocol errors: an evil peer', () => {
  void test('T-F5 DATA on a never-opened stream: GOAWAY PROTOCOL_ERROR', { timeout: 5000 }, async (t) => {
    const v = await victim(t);
    v.raw.send(FrameType.DATA, END_OF_REQUEST, 7, request('x'));
    await assertConnectionError(v, ConnectionCode.PROTOCOL_ERROR, ProtocolErrorCode.STREAM_NOT_OPEN);
  });

  void test('T-F5 frames after a connection error in the same read are not handled: no handler runs for an OPEN behind the peer\'s GOAWAY PROTOCOL_ERROR', { timeout: 5000 }, async (t) => {
    let started = 0;
    const v = await victim(t, { services: [echoService({ onStart: () => started++ })] });
    const frame = (type: number, flags: number, id: number, payload: Uint8Array): Uint8Array => encodeFrame({ type, flags, streamId: id, payload });
    v.raw.sendBytes(
      Buffer.concat([
        frame(FrameType.GOAWAY, 0, 0, encodeGoaway(0, ConnectionCode.PROTOCOL_ERROR, 'you broke it')),
        frame(FrameType.OPEN, 0, 1, encodeOpen(0, 0, HANG)),
        frame(FrameType.DATA, END_OF_REQUEST, 1, request(null)),
      ]),
    );
    await within(v.session.closed, 3000, 'the session to close');
    assert.equal(started, 0, 'a handler ran for a stream read after the connection had failed');
  });

  void test('T-D1 PING ACKs that answer no PING of ours: 16 are ignored, the 17th closes with ENHANCE_YOUR_CALM', { timeout: 5000 }, async (t) => {
    const v = await victim(t, { keepaliveIntervalMs: 0 });
    for (let i = 0; i < 16; i++) v.raw.send(FrameType.PING, Flag.ACK, 0, encodePing(BigInt(1000 + i)));
    await pingBarrier(v.raw, 1n);
    assert.equal(v.raw.ofType(FrameType.GOAWAY).length, 0, '16 stray ACKs are tolerated');
    v.raw.send(FrameType.PING, Flag.ACK, 0, encodePing(2000n));
    await assertConnectionError(v, ConnectionCode.ENHANCE_YOUR_CALM, ProtocolErrorCode.ENHANCE_YOUR_CALM);
    assert.match(v.session.error!.message, /PING ACK flood/);
  });

  void test('T-D1 repeated GOAWAY: eight are tolerated (a two-phase shutdown sends two), the 9th closes with ENHANCE_YOUR_CALM', { timeout: 5000 }, async (t) => {
    const v = await victim(t);
    v.raw.send(FrameType.OPEN, 0, 1, encodeOpen(0, 0, HANG)); // a call of the peer's keeps the draining session open
    v.raw.send(FrameType.DATA, END_OF_REQUEST, 1, request(null));
    for (let i = 0; i < 8; i++) v.raw.send(FrameType.GOAWAY, 0, 0, encodeGoaway(0, ConnectionCode.NO_ERROR, `goodbye ${i}`));
    await pingBarrier(v.raw, 1n);
    assert.equal(v.raw.ofType(FrameType.GOAWAY).length, 0, 'eight GOAWAYs are tolerated');
    v.raw.send(FrameType.GOAWAY, 0, 0, encodeGoaway(0, ConnectionCode.NO_ERROR, 'ninth'));
    await assertConnectionError(v, ConnectionCode.ENHANCE_YOUR_CALM, ProtocolErrorCode.ENHANCE_YOUR_CALM);
    assert.match(v.session.error!.message, /GOAWAY flood/);
  });

  void test('T-F5 CREDIT of 0: GOAWAY FLOW_CONTROL_ERROR (connection and stream)', { timeout: 5000 }, async (t) => {
    const v = await victim(t);
    v.raw.send(FrameType.CREDIT, 0, 0, encodeCredit(0));
    await assertConnectionError(v, ConnectionCode.FLOW_CONTROL_ERROR, ProtocolErrorCode.FLOW_CONTROL);

    const w = await victim(t);
    w.raw.send(FrameType.OPEN, 0, 1, encodeOpen(0, 0, HANG));
    w.raw.send(FrameType.DATA, END_OF_REQUEST, 1, request(null));
    w.raw.send(FrameType.CREDIT, 0, 1, encodeCredit(0));
    await assertConnectionError(w, ConnectionCode.FLOW_CONTROL_ERROR, ProtocolErrorCode.FLOW_CONTROL);
  });

  void test('T-F5 DATA beyond the stream window: GOAWAY FLOW_CONTROL_ERROR', { timeout: 5000 }, async (t) => {
    const v = await victim(t, { initialStreamWindow: 16 * 1024 });
    v.raw.send(FrameType.OPEN, 0, 1, encodeOpen(0, 0, ECHO));
    v.raw.send(FrameType.DATA, 0, 1, new Uint8Array(16 * 1024 + 1));
    await assertConnectionError(v, ConnectionCode.FLOW_CONTROL_ERROR, ProtocolErrorCode.FLOW_CONTROL);
  });

  void test('T-F5 OPEN with the wrong parity: GOAWAY PROTOCOL_ERROR', { timeout: 5000 }, async (t) => {
    const v = await victim(t); // the raw peer is the dialer: its ids must be odd
    v.raw.send(FrameType.OPEN, 0, 2, encodeOpen(0, 0, ECHO));
    await assertConnectionError(v, ConnectionCode.PROTOCOL_ERROR, ProtocolErrorCode.BAD_STREAM_ID);

    const w = await victim(t, {}, 'dialer'); // the raw peer is the acceptor: its ids must be even
    w.raw.send(FrameType.OPEN, 0, 3, encodeOpen(0, 0, ECHO));
    await assertConnectionError(w, ConnectionCode.PROTOCOL_ERROR, ProtocolErrorCode.BAD_STREAM_ID);
  });

  void test('T-F5 OPEN with a non-increasing id: GOAWAY PROTOCOL_ERROR', { timeout: 5000 }, async (t) => {
    const v = await victim(t);
    v.raw.send(FrameType.OPEN, 0, 5, encodeOpen(0, 0, ECHO));
    v.raw.send(FrameType.DATA, END_OF_REQUEST, 5, request(5));
    await v.raw.waitFor((f) => f.streamId === 5 && f.type === FrameType.DATA, 1000, 'the answer on stream 5');
    v.raw.send(FrameType.OPEN, 0, 3, encodeOpen(0, 0, ECHO));
    await assertConnectionError(v, ConnectionCode.PROTOCOL_ERROR, ProtocolErrorCode.BAD_STREAM_ID);

    const w = await victim(t);
    w.raw.send(FrameType.OPEN, 0, 1, encodeOpen(0, 0, HANG));
    w.raw.send(FrameType.OPEN, 0, 1, encodeOpen(0, 0, HANG)); // the same id again
    await assertConnectionError(w, ConnectionCode.PROTOCOL_ERROR, ProtocolErrorCode.BAD_STREAM_ID);
  });

  void test('T-Z6 OPEN with malformed metadata: only that stream is RESET (INTERNAL); a following call works', { timeout: 5000 }, async (t) => {
    const v = await victim(t);
    // one entry, key "BAD" (upper case is not allowed), text value "x"
    const badBlock = Uint8Array.of(1, 3, 0x42, 0x41, 0x44, 0, 0, 1, 0x78);
    v.raw.send(FrameType.OPEN, 0, 1, encodeOpen(0, 0, ECHO, badBlock));
    v.raw.send(FrameType.DATA, END_OF_REQUEST, 1, request('lost')); // in flight already: ignored
    const reset = await v.raw.waitFor((f) => f.type === FrameType.RESET && f.streamId === 1, 1000, 'RESET on stream 1');
    assert.equal(decodeReset(reset.payload).status, Status.INTERNAL);
    assert.equal(reset.flags & Flag.REFUSED, 0);
    v.raw.send(FrameType.OPEN, 0, 3, encodeOpen(0, 0, ECHO));
    v.raw.send(FrameType.DATA, END_OF_REQUEST, 3, request({ ok: true }));
    const answer = await v.raw.waitFor((f) => f.type === FrameType.DATA && f.streamId === 3, 1000, 'the answer on stream 3');
    assert.equal(answer.flags & END_OF_REQUEST, END_OF_REQUEST);
    assert.deepEqual(msgpackCodec.decode(answer.payload), { ok: true });
    assert.equal(v.session.core.isOpen, true);
    assert.equal(v.raw.ofType(FrameType.GOAWAY).length, 0);
  });

  // Regression found by review (fixed in 804d265: reading stops after a connection error).
  void test('T-F5 after a connection error (an unknown frame type), frames the peer sends afterwards get no reply: no PING ACK', { timeout: 5000 }, async (t) => {
    const [rawEnd, sessionEnd] = createMemoryPair();
    const written = tapFrames(sessionEnd); // also what the session tries to write after the transport has ended
    const session = createSession(sessionEnd, 'acceptor');
    t.after(() => session.destroy());
    const raw = new RawPeer(rawEnd);
    raw.sendBytes(helloFrame());
    await within(session.ready, 1000, 'handshake');
    await pingBarrier(raw, 1n); // PINGs are answered while the connection is healthy
    const mark = written.length;
    raw.sendBytes(Uint8Array.of(0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0)); // type 9: unknown and below the extension range
    for (let i = 2n; i <= 4n; i++) raw.send(FrameType.PING, 0, 0, encodePing(i)); // arrive in the same delivery
    const error = await within(session.closed, 3000, 'the session closes');
    assert.ok(error instanceof ProtocolError && error.code === ProtocolErrorCode.UNKNOWN_FRAME_TYPE, `closed with ${String(error)}`);
    await sleep(10);
    const after = written.slice(mark);
    assert.deepEqual(
      after.map((f) => f.type),
      [FrameType.GOAWAY],
      'the GOAWAY is the last thing the session writes',
    );
    assert.equal(decodeGoaway(after[0]!.payload).code, ConnectionCode.PROTOCOL_ERROR);
  });
});

// ---------------------------------------------------------------- a dialer not yet admitted

void describe('T-Z3 pre-auth surface: a dialer whose token is still being checked may send nothing but GOAWAY', () => {
  const TOKEN = utf8('pre-auth-token');
  /** An acceptor whose auth.verify answers only when the test says so, facing a raw dialer that sent its HELLO. */
  async function admitting(t: TestContext): Promise<{ v: Victim; written: ReturnType<typeof tapFrames>; started: () => number; admit(ok: boolean): void }> {
    const verdict = deferred<boolean>();
    t.after(() => verdict.resolve(true));
    let asked = 0;
    let started = 0;
    const [rawEnd, sessionEnd] = createMemoryPair();
    const written = tapFrames(sessionEnd);
    const session = createSession(sessionEnd, 'acceptor', {
      services: [echoService({ onStart: () => started++ })],
      auth: { verify: () => (asked++, verdict.promise) },
    });
    t.after(() => session.destroy());
    const raw = new RawPeer(rawEnd);
    raw.sendBytes(helloFrame({ authToken: TOKEN }));
    await until(() => asked === 1, 1000, 'verify() is asked');
    return { v: { raw, session, aborted: [] }, written, started: () => started, admit: (ok) => verdict.resolve(ok) };
  }

  const frame = (type: number, flags: number, id: number, payload: Uint8Array = new Uint8Array(0)): Uint8Array => encodeFrame({ type, flags, streamId: id, payload });
  const cases: Array<{ name: string; bytes: Uint8Array; code: ProtocolErrorCode; goaway: ConnectionCode }> = [
    {
      name: 'a call (OPEN then DATA)',
      bytes: Buffer.concat([frame(FrameType.OPEN, 0, 1, encodeOpen(0, 0, HANG)), frame(FrameType.DATA, END_OF_REQUEST, 1, request(null))]),
      code: ProtocolErrorCode.BAD_HANDSHAKE,
      goaway: ConnectionCode.PROTOCOL_ERROR,
    },
    { name: 'DATA', bytes: frame(FrameType.DATA, END_OF_REQUEST, 1, request('x')), code: ProtocolErrorCode.BAD_HANDSHAKE, goaway: ConnectionCode.PROTOCOL_ERROR },
    { name: 'a PING (no answer before admission)', bytes: frame(FrameType.PING, 0, 0, encodePing(1n)), code: ProtocolErrorCode.BAD_HANDSHAKE, goaway: ConnectionCode.PROTOCOL_ERROR },
    { name: 'a CREDIT', bytes: frame(FrameType.CREDIT, 0, 0, encodeCredit(1024)), code: ProtocolErrorCode.BAD_HANDSHAKE, goaway: ConnectionCode.PROTOCOL_ERROR },
    { name: 'an extension frame', bytes: frame(0x80, 0, 0), code: ProtocolErrorCode.BAD_HANDSHAKE, goaway: ConnectionCode.PROTOCOL_ERROR },
    {
      name: 'the header of a 1 MiB DATA frame (a bulk body)',
      bytes: Uint8Array.of(FrameType.DATA, 0, 0, 0, 0, 1, 0, 0x10, 0, 0),
      code: ProtocolErrorCode.BAD_HANDSHAKE,
      goaway: ConnectionCode.PROTOCOL_ERROR,
    },
    {
      name: 'a GOAWAY frame over the pre-handshake limit of 4 096 bytes',
      bytes: Uint8Array.of(FrameType.GOAWAY, 0, 0, 0, 0, 0, 0, 0, 0x20, 0),
      code: ProtocolErrorCode.FRAME_SIZE,
      goaway: ConnectionCode.FRAME_SIZE_ERROR,
    },
  ];
  for (const c of cases) {
    void test(`T-Z3 ${c.name} before our HELLO: the connection closes (${c.code}), no handler runs, our HELLO is never sent, a later "admitted" changes nothing`, { timeout: 5000 }, async (t) => {
      const { v, written, started, admit } = await admitting(t);
      v.raw.sendBytes(c.bytes);
      const error = await within(v.session.closed, 3000, 'the session closes');
      assert.ok(error instanceof ProtocolError && error.code === c.code, `closed with ${String(error)}`);
      admit(true);
      await sleep(20);
      assert.deepEqual(written.map((f) => f.type), [FrameType.GOAWAY], 'a GOAWAY, and nothing else: no HELLO, no PING ACK');
      assert.equal(decodeGoaway(written[0]!.payload).code, c.goaway);
      assert.equal(started(), 0, 'no handler ran');
      await rejectsWith(v.session.ready, c.code);
    });
  }

  void test('T-Z3 the dialer\'s GOAWAY while it is being admitted ends the handshake; a later answer is dropped', { timeout: 5000 }, async (t) => {
    const { v, written, admit } = await admitting(t);
    v.raw.send(FrameType.GOAWAY, 0, 0, encodeGoaway(0, ConnectionCode.NO_ERROR, 'giving up'));
    await within(v.session.closed, 3000, 'the session closes');
    admit(true);
    await sleep(20);
    assert.deepEqual(written.map((f) => f.type), [], 'nothing sent: the dialer left first');
    await assert.rejects(v.session.ready, /during the handshake: giving up/);
  });

  void test('T-Z3 once admitted, the acceptor\'s HELLO goes first and the same dialer is served', { timeout: 5000 }, async (t) => {
    const { v, written, admit } = await admitting(t);
    admit(true);
    await within(v.session.ready, 1000, 'ready');
    v.raw.send(FrameType.OPEN, 0, 1, encodeOpen(0, 0, ECHO));
    v.raw.send(FrameType.DATA, END_OF_REQUEST, 1, request('after'));
    const answer = await v.raw.waitFor((f) => f.type === FrameType.DATA && f.streamId === 1, 1000, 'the answer');
    assert.equal(msgpackCodec.decode(answer.payload), 'after');
    assert.equal(written[0]?.type, FrameType.HELLO, 'our HELLO was the first frame we sent');
  });
});

async function rejectsWith(promise: Promise<unknown>, code: ProtocolErrorCode): Promise<void> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  assert.ok(error instanceof Error && (error.cause as ProtocolError | undefined)?.code === code, `ready rejected with ${String(error)}`);
}
