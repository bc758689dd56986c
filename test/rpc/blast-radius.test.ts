/**
 * T-Z6 blast radius (gRPC-core CVE-2023-32732: one bad header dropped the whole connection; CVE-2024-7246: a decoder
 * left in an error state poisoned the requests after it): 100 streams active on one connection, and one of them gets a
 * malformed message (bytes msgpack never uses, a truncated value, a bomb; sent in two DATA frames with the other
 * streams' frames between them) or malformed metadata (request metadata in an OPEN, trailer metadata in an END). Only
 * that stream fails, with its status; the 99 others complete with every message in order; the next call on the same
 * connection works, and no stream is left behind. Both directions of decoding: a RawPeer (fixtures/sessions.ts) calls
 * an RpcSession that serves (requests are decoded by the acceptor), and answers an RpcSession that calls (responses
 * and trailers are decoded by the dialer).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { bidi, defineService, RpcError, serve, serverStream, Status, statusName, unary, type MessageStream } from '../../src/index.js';
import { msgpackCodec } from '../../src/rpc/codec.js';
import { utf8 } from '../../src/wire/bytes.js';
import { connectionCodeName, Flag, FrameType } from '../../src/wire/constants.js';
import { decodeEnd, decodeGoaway, decodeOpen, decodeReset, encodeEnd, encodeOpen } from '../../src/wire/payloads.js';
import { againstRawPeer, victim } from '../fixtures/sessions.js';
import { until, within, type RawPeer } from '../helpers.js';

const STREAMS = 100;
/** Which of the 100 gets the poison. */
const POISONED = 51;
const LIMITS = { maxMetadataBytes: 8 * 1024, maxMetadataEntries: 64 };
const END_OF_MESSAGE = Flag.MESSAGE_END;
const END_OF_SIDE = Flag.MESSAGE_END | Flag.END_STREAM;

const Chat = defineService('test.blast.Chat', {
  /** Echoes every request. */
  echo: bidi<unknown, unknown>(),
  once: unary<unknown, unknown>(),
});
const chatService = serve(Chat, {
  async *echo(requests) {
    for await (const request of requests) yield request;
  },
  once: (value) => value,
});
const ECHO = utf8('test.blast.Chat/echo');
const ONCE = utf8('test.blast.Chat/once');

const Feed = defineService('test.blast.Feed', {
  /** Served by the raw peer, by hand. */
  watch: serverStream<number, unknown>(),
});

interface Poison {
  name: string;
  bytes: Uint8Array;
  status: Status;
}

/** Messages that cannot be decoded. Each is sent in two DATA frames, other streams' frames between the halves. */
const MESSAGE_POISONS: readonly Poison[] = [
  { name: 'a byte msgpack never uses (0xc1) inside an array', bytes: Uint8Array.of(0x92, 0x01, 0xc1), status: Status.INTERNAL },
  { name: 'a truncated msgpack string (str8 of 10 bytes carrying 3)', bytes: Uint8Array.of(0xd9, 10, 0x61, 0x62, 0x63), status: Status.INTERNAL },
  { name: 'a length bomb (an array32 header declaring 20 million elements, none present)', bytes: Uint8Array.of(0xdd, 0x01, 0x31, 0x2d, 0x00), status: Status.INTERNAL },
  // 100 one-element arrays nested, around a nil: deeper than the msgpack codec's decode budget (maxDepth 64)
  { name: 'a depth bomb (arrays nested 100 deep)', bytes: Uint8Array.from([...Array<number>(100).fill(0x91), 0xc0]), status: Status.RESOURCE_EXHAUSTED },
];

/** Metadata blocks that cannot be decoded (the layout is in src/wire/metadata.ts). */
const METADATA_POISONS: ReadonlyArray<Omit<Poison, 'status'>> = [
  // one entry, key "BAD" (upper case is not allowed), text value "x"
  { name: 'an upper-case metadata key', bytes: Uint8Array.of(1, 3, 0x42, 0x41, 0x44, 0, 0, 1, 0x78) },
  // one entry, key "k", a text value said to be 16 bytes long that carries 1
  { name: 'a metadata value running past the end of its frame', bytes: Uint8Array.of(1, 1, 0x6b, 0, 0, 16, 0x61) },
];

const encode = (value: unknown): Uint8Array => msgpackCodec.encode(value);

// ---------------------------------------------------------------- what a raw peer received on one stream

interface RawStream {
  messages: unknown[];
  /** How the other side ended it: OK for END_STREAM, else END's or RESET's status; undefined while open. */
  status?: Status;
  how?: 'END_STREAM' | 'END' | 'RESET';
  message?: string;
}

/** The messages and the end of stream `id` (its first END_STREAM, END or RESET), as the raw peer has received them so far. */
function streamOf(raw: RawPeer, id: number): RawStream {
  const out: RawStream = { messages: [] };
  let parts: Uint8Array[] = [];
  for (const frame of raw.frames) {
    if (frame.streamId !== id) continue;
    if (frame.type === FrameType.DATA) {
      parts.push(frame.payload);
      if ((frame.flags & Flag.MESSAGE_END) !== 0) {
        out.messages.push(msgpackCodec.decode(Buffer.concat(parts)));
        parts = [];
      }
      if ((frame.flags & Flag.END_STREAM) !== 0) Object.assign(out, { status: Status.OK, how: 'END_STREAM' });
    } else if (out.status !== undefined) {
      continue; // a server that answered resets a caller still sending (resetAfterEnd): the END is the outcome
    } else if (frame.type === FrameType.END) {
      const end = decodeEnd(frame.payload, LIMITS);
      Object.assign(out, { status: end.status, how: 'END', message: end.message });
    } else if (frame.type === FrameType.RESET) {
      const reset = decodeReset(frame.payload);
      Object.assign(out, { status: reset.status, how: 'RESET', message: reset.message });
    }
  }
  return out;
}

function assertFailed(stream: RawStream, status: Status, what: string): void {
  assert.ok(stream.status !== undefined, `${what}: still open`);
  assert.equal(stream.status, status, `${what}: expected ${statusName(status)}, got ${statusName(stream.status)} by ${stream.how} (${stream.message})`);
}

function assertRpcError(error: unknown, status: Status, what: string): asserts error is RpcError {
  assert.ok(error instanceof RpcError, `${what}: expected an RpcError, got ${String(error)}`);
  assert.equal(error.code, status, `${what}: expected ${statusName(status)}, got ${statusName(error.code)} (${error.message})`);
}

const idOf = (i: number): number => 2 * i + 1; // the raw peer dials: odd ids

/** Waits for `predicate`, failing at once (with the reason) if the session failed the whole connection instead. */
async function untilAnswered(raw: RawPeer, predicate: () => boolean, what: string): Promise<void> {
  let closed = false;
  void raw.ended.promise.then(() => (closed = true));
  await until(
    () => {
      const goaway = raw.ofType(FrameType.GOAWAY)[0];
      if (goaway !== undefined) {
        const { code, message } = decodeGoaway(goaway.payload);
        assert.fail(`${what}: the session failed the whole connection instead (GOAWAY ${connectionCodeName(code)}: ${message})`);
      }
      if (closed) assert.fail(`${what}: the session closed the connection instead`);
      return predicate();
    },
    3000,
    what,
  );
}

// ---------------------------------------------------------------- requests decoded by the serving side

void describe('T-Z6 blast radius: the serving side decodes a malformed request on one of 100 active streams', () => {
  /** A session serving Chat; the raw peer opened `STREAMS` echo streams (all but `skip`) and each answered once. */
  async function hundredActive(t: Parameters<typeof victim>[0], skip?: number): Promise<Awaited<ReturnType<typeof victim>>> {
    const v = await victim(t, { services: [chatService] });
    for (let i = 0; i < STREAMS; i++) {
      if (i === skip) continue;
      v.raw.send(FrameType.OPEN, 0, idOf(i), encodeOpen(0, 0, ECHO));
      v.raw.send(FrameType.DATA, END_OF_MESSAGE, idOf(i), encode({ i, step: 1 }));
    }
    await untilAnswered(
      v.raw,
      () => Array.from({ length: STREAMS }, (_, i) => i).every((i) => i === skip || streamOf(v.raw, idOf(i)).messages.length === 1),
      'every stream echoed its first message',
    );
    assert.equal(v.session.streamCount, skip === undefined ? STREAMS : STREAMS - 1, 'the streams are active');
    return v;
  }

  /** The others complete whole, the next call works, no stream is left and the connection was never failed. */
  async function othersUnharmed(v: Awaited<ReturnType<typeof victim>>, poisoned: number): Promise<void> {
    for (let i = 0; i < STREAMS; i++) if (i !== poisoned) v.raw.send(FrameType.DATA, END_OF_SIDE, idOf(i), encode({ i, step: 3 }));
    await untilAnswered(
      v.raw,
      () => Array.from({ length: STREAMS }, (_, i) => i).every((i) => i === poisoned || streamOf(v.raw, idOf(i)).status !== undefined),
      'the 99 other streams ended',
    );
    for (let i = 0; i < STREAMS; i++) {
      if (i === poisoned) continue;
      const stream = streamOf(v.raw, idOf(i));
      assert.equal(stream.status, Status.OK, `stream ${i} ended OK (${stream.how} ${stream.message})`);
      assert.deepEqual(stream.messages, [1, 2, 3].map((step) => ({ i, step })), `stream ${i} echoed every message in order`);
    }
    // the next call on the same connection: the decoders (frames, metadata, msgpack) start clean
    const next = idOf(STREAMS + 1);
    v.raw.send(FrameType.OPEN, 0, next, encodeOpen(0, 0, ONCE));
    v.raw.send(FrameType.DATA, END_OF_SIDE, next, encode({ after: 'the poison', list: [1, 2, 3] }));
    await untilAnswered(v.raw, () => streamOf(v.raw, next).status !== undefined, 'the next call');
    assert.deepEqual(streamOf(v.raw, next), { messages: [{ after: 'the poison', list: [1, 2, 3] }], status: Status.OK, how: 'END_STREAM' });
    assert.equal(v.raw.ofType(FrameType.GOAWAY).length, 0, 'no GOAWAY: the connection was never failed');
    assert.equal(v.session.core.isOpen, true);
    await until(() => v.session.streamCount === 0, 2000, 'no stream left behind');
  }

  for (const poison of MESSAGE_POISONS) {
    void test(`T-Z6 ${poison.name}: only that stream fails ${statusName(poison.status)}; the 99 others complete; the next call works`, { timeout: 10_000 }, async (t) => {
      const v = await hundredActive(t);
      const id = idOf(POISONED);
      const half = Math.ceil(poison.bytes.length / 2);
      v.raw.send(FrameType.DATA, 0, id, poison.bytes.subarray(0, half));
      // the other streams' second messages go between the halves of the poisoned one
      for (let i = 0; i < STREAMS; i++) if (i !== POISONED) v.raw.send(FrameType.DATA, END_OF_MESSAGE, idOf(i), encode({ i, step: 2 }));
      v.raw.send(FrameType.DATA, END_OF_MESSAGE, id, poison.bytes.subarray(half));
      await untilAnswered(v.raw, () => streamOf(v.raw, id).status !== undefined, 'the poisoned stream ended');
      const poisoned = streamOf(v.raw, id);
      assertFailed(poisoned, poison.status, 'the poisoned stream');
      assert.deepEqual(poisoned.messages, [{ i: POISONED, step: 1 }], 'it got its first echo, nothing after');
      await othersUnharmed(v, POISONED);
    });
  }

  for (const poison of METADATA_POISONS) {
    void test(`T-Z6 an OPEN with ${poison.name} among 99 active streams: only it is RESET INTERNAL; the 99 complete; the next call works`, { timeout: 10_000 }, async (t) => {
      const v = await hundredActive(t, POISONED);
      // stream ids only grow: the poisoned OPEN takes the id after the 99's (its index's own id stays unused)
      const badId = idOf(STREAMS);
      v.raw.send(FrameType.OPEN, 0, badId, encodeOpen(0, 0, ECHO, poison.bytes));
      v.raw.send(FrameType.DATA, END_OF_MESSAGE, badId, encode('in flight already: ignored'));
      for (let i = 0; i < STREAMS; i++) if (i !== POISONED) v.raw.send(FrameType.DATA, END_OF_MESSAGE, idOf(i), encode({ i, step: 2 }));
      await untilAnswered(v.raw, () => streamOf(v.raw, badId).status !== undefined, 'the bad OPEN answered');
      const bad = streamOf(v.raw, badId);
      assertFailed(bad, Status.INTERNAL, 'the stream with bad metadata');
      assert.equal(bad.how, 'RESET');
      assert.deepEqual(bad.messages, []);
      await othersUnharmed(v, POISONED);
    });
  }
});

// ---------------------------------------------------------------- responses decoded by the calling side

void describe('T-Z6 blast radius: the calling side decodes a malformed response on one of 100 active calls', () => {
  /** An RpcSession that dialed the raw peer and has 100 Feed.watch calls open, each with its first response read. */
  async function hundredCalls(t: Parameters<typeof againstRawPeer>[0]) {
    const { raw, session } = againstRawPeer(t, 'dialer');
    await within(session.ready, 1000, 'handshake');
    const feed = session.client(Feed);
    const calls: Array<MessageStream<unknown>> = Array.from({ length: STREAMS }, (_, i) => feed.watch(i));
    await until(() => raw.ofType(FrameType.OPEN).length === STREAMS, 2000, 'the raw peer got 100 OPENs');
    const ids = raw.ofType(FrameType.OPEN).map((f) => {
      assert.equal(decodeOpen(f.payload, LIMITS).method, 'test.blast.Feed/watch');
      return f.streamId;
    });
    await until(() => ids.every((id) => streamOf(raw, id).messages.length === 1), 2000, 'every request arrived');
    const byIndex = new Map(ids.map((id) => [streamOf(raw, id).messages[0] as number, id])); // the request is the index
    for (let i = 0; i < STREAMS; i++) raw.send(FrameType.DATA, END_OF_MESSAGE, byIndex.get(i)!, encode({ i, step: 1 }));
    const firsts = await within(Promise.all(calls.map((c) => c.next())), 2000, 'every first response');
    firsts.forEach((r, i) => assert.deepEqual(r, { done: false, value: { i, step: 1 } }));
    return { raw, session, feed, calls, idOf: (i: number) => byIndex.get(i)! };
  }

  async function restOf(call: MessageStream<unknown>): Promise<{ items: unknown[]; error: unknown }> {
    const items: unknown[] = [];
    try {
      for await (const item of call) items.push(item);
      return { items, error: undefined };
    } catch (error) {
      return { items, error };
    }
  }

  /** Each sends its poison on stream `id`, calling `between` halfway (the other streams' frames go there). */
  const poisons: ReadonlyArray<Poison & { send(raw: RawPeer, id: number, between: () => void): void }> = [
    ...MESSAGE_POISONS.map((poison) => ({
      ...poison,
      send(raw: RawPeer, id: number, between: () => void) {
        const half = Math.ceil(poison.bytes.length / 2);
        raw.send(FrameType.DATA, 0, id, poison.bytes.subarray(0, half));
        between();
        raw.send(FrameType.DATA, END_OF_MESSAGE, id, poison.bytes.subarray(half));
      },
    })),
    ...METADATA_POISONS.map((poison) => ({
      name: `an END whose trailer has ${poison.name}`,
      bytes: poison.bytes,
      status: Status.INTERNAL,
      send(raw: RawPeer, id: number, between: () => void) {
        between();
        raw.send(FrameType.END, 0, id, encodeEnd(Status.OK, '', poison.bytes));
      },
    })),
  ];

  for (const poison of poisons) {
    void test(`T-Z6 ${poison.name}: only that call fails ${statusName(poison.status)}; the 99 others read every response; the next call works`, { timeout: 10_000 }, async (t) => {
      const { raw, session, feed, calls, idOf: streamId } = await hundredCalls(t);
      const reading = calls.map((call) => restOf(call));
      const others = Array.from({ length: STREAMS }, (_, i) => i).filter((i) => i !== POISONED);
      poison.send(raw, streamId(POISONED), () => {
        for (const i of others) raw.send(FrameType.DATA, END_OF_MESSAGE, streamId(i), encode({ i, step: 2 }));
      });
      for (const i of others) raw.send(FrameType.DATA, END_OF_SIDE, streamId(i), encode({ i, step: 3 }));
      const results = await within(Promise.all(reading), 3000, 'every call ended');
      for (const [i, result] of results.entries()) {
        if (i === POISONED) {
          assertRpcError(result.error, poison.status, 'the poisoned call');
          assert.deepEqual(result.items, [], 'nothing after the first response');
        } else {
          assert.equal(result.error, undefined, `call ${i} ended cleanly`);
          assert.deepEqual(result.items, [{ i, step: 2 }, { i, step: 3 }], `call ${i} read every response`);
        }
      }
      // the next call on the same connection
      const from = raw.ofType(FrameType.OPEN).length;
      const next = feed.watch(-1);
      await until(() => raw.ofType(FrameType.OPEN).length > from, 2000, 'the next OPEN');
      const nextId = raw.ofType(FrameType.OPEN)[from]!.streamId;
      raw.send(FrameType.DATA, END_OF_SIDE, nextId, encode({ after: 'the poison' }));
      assert.deepEqual((await restOf(next)).items, [{ after: 'the poison' }]);
      assert.equal(raw.ofType(FrameType.GOAWAY).length, 0, 'no GOAWAY: the connection was never failed');
      assert.equal(session.core.isOpen, true);
      await until(() => session.streamCount === 0, 2000, 'no stream left behind');
    });
  }
});
