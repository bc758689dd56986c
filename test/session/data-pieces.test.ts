/**
 * A bulk body's DATA frame that straddles socket reads (session/data-pieces.ts), against a raw peer that writes frames
 * by hand and cuts them where it likes: the reader gets each part as it arrives (no waiting for the whole frame, no
 * copy), every check a whole frame gets is made at the frame's header (a frame over the stream's credit is refused
 * before the rest of it arrives, and nothing of it is delivered), and connection credit comes back for every byte,
 * also for the rest of a frame whose stream was reset while it arrived.
 */
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';

import { createMemoryPair, createSession, type RpcSession, type RpcSessionOptions } from '../../src/index.js';
import { ConnectionCode, Flag, FrameType } from '../../src/wire/constants.js';
import { ProtocolError, ProtocolErrorCode } from '../../src/wire/errors.js';
import { writeFrameHeader } from '../../src/wire/frame.js';
import { decodeCredit, decodeGoaway, encodePing } from '../../src/wire/payloads.js';
import { Bulk, KiB } from '../fixtures/bulk.js';
import { helloFrame, RawPeer, sleep, within, type RawFrame } from '../helpers.js';

interface Victim {
  raw: RawPeer;
  session: RpcSession;
}

/** Our session dials a raw peer that plays the server. */
async function victim(t: TestContext, options: RpcSessionOptions = {}): Promise<Victim> {
  const [rawEnd, sessionEnd] = createMemoryPair();
  const session = createSession(sessionEnd, 'dialer', options);
  t.after(() => session.destroy());
  const raw = new RawPeer(rawEnd);
  raw.sendBytes(helloFrame({}));
  await within(session.ready, 1000, 'handshake');
  return { raw, session };
}

/** Starts a download and waits for its OPEN and request: the id of its stream. */
async function download(v: Victim): Promise<{ body: AsyncIterator<Uint8Array>; id: number }> {
  const from = v.raw.frames.length;
  const body = v.session.client(Bulk).get({ bytes: 0 })[Symbol.asyncIterator]();
  const request = await v.raw.waitFor((f) => f.type === FrameType.DATA && (f.flags & Flag.END_STREAM) !== 0, 1000, 'the request', from);
  return { body, id: request.streamId };
}

/** A DATA frame's header and the first `first` bytes of its `length`-byte payload (filled with `fill`). */
function frameStart(id: number, flags: number, length: number, first: number, fill: number): Uint8Array {
  const out = new Uint8Array(10 + first).fill(fill);
  writeFrameHeader(out, 0, FrameType.DATA, flags, id, length);
  return out;
}

async function barrier(raw: RawPeer, opaque: bigint): Promise<void> {
  const from = raw.frames.length;
  raw.send(FrameType.PING, 0, 0, encodePing(opaque));
  await raw.waitFor((f) => f.type === FrameType.PING && (f.flags & Flag.ACK) !== 0, 1000, `PING ACK ${opaque}`, from);
}

const connectionCredit = (frames: RawFrame[]): number =>
  frames.filter((f) => f.type === FrameType.CREDIT && f.streamId === 0).reduce((sum, f) => sum + decodeCredit(f.payload), 0);

void describe('bulk DATA frames that straddle reads', () => {
  void test('the reader gets each part of a frame as it arrives, before the rest of the frame is sent', { timeout: 5000 }, async (t) => {
    const v = await victim(t);
    const { body, id } = await download(v);
    v.raw.sendBytes(frameStart(id, 0, 4000, 1000, 1));
    const first = await within(body.next(), 1000, 'the first part, before the rest is sent');
    assert.equal(first.done, false);
    assert.equal(first.value!.length, 1000);
    v.raw.sendBytes(new Uint8Array(3000).fill(1));
    const rest = await within(body.next(), 1000, 'the rest');
    assert.equal(rest.value!.length, 3000);
    v.raw.send(FrameType.DATA, Flag.END_STREAM, id);
    assert.equal((await within(body.next(), 1000, 'the end')).done, true);
  });

  void test('T-F5 a straddling frame over the stream credit is refused at its header: GW_ERR_FLOW_CONTROL, none of it delivered', { timeout: 5000 }, async (t) => {
    const window = 16 * KiB; // the bulk window our download grants
    const v = await victim(t, { bulkWindow: window });
    const { body, id } = await download(v);
    const read = body.next();
    read.catch(() => undefined); // asserted below
    v.raw.sendBytes(frameStart(id, 0, window + 1, 100, 1)); // the rest is never sent
    const goaway = await v.raw.waitFor((f) => f.type === FrameType.GOAWAY, 1000, 'GOAWAY before the rest of the frame');
    assert.equal(decodeGoaway(goaway.payload).code, ConnectionCode.FLOW_CONTROL_ERROR);
    const error = await within(v.session.closed, 1000, 'closed');
    assert.ok(error instanceof ProtocolError && error.code === ProtocolErrorCode.FLOW_CONTROL, String(error));
    await assert.rejects(within(read, 1000, 'the reader'), 'the reader fails; it got no byte of the frame');
  });

  void test('a frame whose stream is reset while it arrives: the rest is dropped, connection credit comes back for all of it', { timeout: 5000 }, async (t) => {
    const v = await victim(t, { connectionWindow: 64 * KiB }); // connection CREDIT every 16 KiB handled
    const { body, id } = await download(v);
    v.raw.sendBytes(frameStart(id, 0, 20 * KiB, 4 * KiB, 2));
    assert.equal((await within(body.next(), 1000, 'the first part')).value!.length, 4 * KiB);
    await body.return!(); // the reader stops: the call is cancelled, its stream reset
    await v.raw.waitFor((f) => f.type === FrameType.RESET && f.streamId === id, 1000, 'RESET of the cancelled call');
    v.raw.sendBytes(new Uint8Array(16 * KiB).fill(2)); // the rest of the frame, for a stream that is gone
    await barrier(v.raw, 1n);
    await sleep(10);
    assert.equal(v.session.core.isOpen, true);
    // given back piece by piece as each is handled, dropped or not: once 16 KiB or more wait, all of them at once
    assert.equal(connectionCredit(v.raw.frames), 20 * KiB, 'connection credit for the whole frame, its dropped rest too');
    const second = await download(v);
    v.raw.send(FrameType.DATA, 0, second.id, new Uint8Array(16 * KiB));
    assert.equal((await within(second.body.next(), 1000, 'the second download')).value!.length, 16 * KiB);
    await barrier(v.raw, 2n);
    assert.equal(connectionCredit(v.raw.frames), 36 * KiB);
  });
});
