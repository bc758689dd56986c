/**
 * Flow control of message streams: a fast producer waits for a slow reader; 64 MiB each way with and without raised
 * windows; a stalled reader holds back only its own stream; message credit with a window of 4. Then the same rules
 * enforced against a peer that writes frames by hand (PROTOCOL.md §6): DATA beyond a stream's byte credit or its
 * message credit, and message credit on stream 0, close the connection with GW_ERR_FLOW_CONTROL; credit comes back
 * as the application consumes, and our sender keeps to the peer's message window. Last, connection credit: a stream
 * blocked on a zero connection window waits once, however many stream CREDITs arrive, and sends once credit comes.
 * (Bulk transfers' flow control is in rpc/bulk-flow.test.ts.)
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test, type TestContext } from 'node:test';

import {
  bidi,
  clientStream,
  createMemoryPair,
  createSession,
  defineService,
  serve,
  serverStream,
  type Handlers,
  type RpcSession,
  type RpcSessionOptions,
} from '../../src/index.js';
import { SEND_HIGH_WATER_BYTES } from '../../src/session/send-queue.js';
import { utf8 } from '../../src/wire/bytes.js';
import { ConnectionCode, connectionCodeName, Flag, FrameType } from '../../src/wire/constants.js';
import { ProtocolError, ProtocolErrorCode } from '../../src/wire/errors.js';
import { decodeHello, type HelloSettings } from '../../src/wire/hello.js';
import { decodeCredit, decodeGoaway, encodeCredit, encodeOpen, encodePing } from '../../src/wire/payloads.js';
import { Bytes } from '../fixtures/bytes-service.js';
import { againstRawPeer, pingBarrier } from '../fixtures/sessions.js';
import { deferred, helloFrame, RawPeer, sleep, testConnTypes, until, within, type RawFrame } from '../helpers.js';

// ---------------------------------------------------------------- data

const KiB = 1024;
const MiB = 1024 * KiB;
const RANDOM = randomBytes(MiB + 64);

/** `size` bytes that differ per `i` (random content, the index in the first 4 bytes). */
function blob(i: number, size: number): Uint8Array {
  const offset = (i * 13) % 64;
  const bytes = Buffer.from(RANDOM.subarray(offset, offset + size));
  if (size >= 4) bytes.writeUInt32BE(i >>> 0, 0);
  return bytes;
}

function sameBytes(actual: Uint8Array, expected: Uint8Array): boolean {
  return Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength).equals(expected);
}

function indexOf(bytes: Uint8Array): number {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).readUInt32BE(0);
}

/** The request of `produce`: how many blobs of what size. */
function params(n: number, size: number): Uint8Array {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(n, 0);
  b.writeUInt32BE(size, 4);
  return b;
}

function parseParams(bytes: Uint8Array): { n: number; size: number } {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { n: b.readUInt32BE(0), size: b.readUInt32BE(4) };
}

const u32 = (n: number): Uint8Array => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n, 0);
  return b;
};

// ---------------------------------------------------------------- the service

const Flow = defineService('test.Flow', {
  /** Yields `n` blobs of `size` bytes (request: params(n, size)) as fast as it may. */
  produce: serverStream({ codec: 'raw' }),
  /** Reads blobs; answers with how many (u32). */
  sink: clientStream({ codec: 'raw' }),
  /** Both ways at once: whatever the test's handler does. */
  pipe: bidi({ codec: 'raw' }),
});

type FlowHandlers = Handlers<(typeof Flow)['methods']>;

function flow(overrides: Partial<FlowHandlers> & { onProduce?: () => void } = {}): ReturnType<typeof serve> {
  const { onProduce, ...handlers } = overrides;
  return serve(Flow, {
    async *produce(request) {
      const { n, size } = parseParams(request);
      for (let i = 0; i < n; i++) {
        onProduce?.();
        yield blob(i, size);
      }
    },
    async sink(requests) {
      let count = 0;
      for await (const bytes of requests) {
        if (bytes.length >= 4 && indexOf(bytes) !== count) throw new Error(`request ${count} arrived as ${indexOf(bytes)}`);
        count++;
      }
      return u32(count);
    },
    async *pipe(requests) {
      for await (const m of requests) yield m;
    },
    ...handlers,
  });
}

/** Both ends have forgotten every stream. */
async function streamsGone(a: RpcSession, b: RpcSession, what: string): Promise<void> {
  await until(() => a.core.streamCount === 0 && b.core.streamCount === 0, 2000, `${what}: stream tables empty on both sides`);
}

// ---------------------------------------------------------------- a fast producer and a slow reader

void describe('streams flow control: back pressure', () => {
  testConnTypes('T-S7 a fast producer waits for a slow reader: it is never more than a stream window (+ the send high-water mark) ahead', async (env) => {
    const SIZE = 16 * KiB;
    const N = 120;
    const WINDOW = 256 * KiB; // the caller's default initialStreamWindow: what the producer may have in flight
    let produced = 0;
    const { caller, callee } = await env.open({ services: [flow({ onProduce: () => produced++ })] });
    const bound = WINDOW / SIZE + SEND_HIGH_WATER_BYTES / SIZE + 2;
    let read = 0;
    let maxLead = 0;
    let stalledLead = 0;
    await within(
      (async () => {
        for await (const bytes of caller.client(Flow).produce(params(N, SIZE))) {
          assert.ok(sameBytes(bytes, blob(read, SIZE)), `item ${read} intact and in order`);
          read++;
          maxLead = Math.max(maxLead, produced - read);
          if (read === 1) {
            // the reader stalls: the producer fills what credit allows, then waits
            await until(() => produced - read >= WINDOW / SIZE, 2000, 'the producer fills the window');
            await sleep(50);
            const before = produced;
            await sleep(150);
            assert.equal(produced, before, `the producer waits while the reader stalls (it produced ${produced - before} more)`);
            stalledLead = produced - read;
            maxLead = Math.max(maxLead, stalledLead);
          } else if (read % 4 === 0) {
            await sleep(2);
          }
        }
      })(),
      8000,
      'reading slowly',
    );
    assert.equal(read, N);
    assert.ok(stalledLead >= WINDOW / SIZE, `the producer used the window while the reader stalled (lead ${stalledLead})`);
    assert.ok(maxLead <= bound, `the producer was at most ${bound} items ahead of the reader (max lead ${maxLead})`);
    await streamsGone(caller, callee, 'after the stream');
  });

  testConnTypes('T-S7 tiny messages do not pile up in the sender: a stalled reader holds the producer to the message window + the high-water mark', async (env) => {
    const SIZE = 4;
    const MESSAGE_WINDOW = 1024; // the caller's default initialMessageWindow
    let produced = 0;
    const { caller, callee } = await env.open({ services: [flow({ onProduce: () => produced++ })] });
    // each queued message costs its bytes plus 64 against the 64 KiB high-water mark
    const bound = MESSAGE_WINDOW + Math.ceil(SEND_HIGH_WATER_BYTES / (SIZE + 64)) + 2;
    const controller = new AbortController();
    const responses = caller.client(Flow).produce(params(1_000_000, SIZE), { signal: controller.signal });
    assert.equal((await within(responses.next(), 2000, 'first response')).done, false);
    await until(() => produced >= MESSAGE_WINDOW, 2000, 'the producer fills the message window');
    for (let before = -1, waited = 0; produced !== before; waited += 50) {
      assert.ok(waited < 4000, 'the producer stops within 4 s');
      before = produced;
      await sleep(50);
    }
    assert.ok(produced - 1 <= bound, `the producer was at most ${bound} messages ahead of the stalled reader (it was ${produced - 1})`);
    controller.abort();
    await streamsGone(caller, callee, 'after the cancelled stream');
  });

  testConnTypes(
    'T-S7 a stalled reader holds back only its own stream: other calls on the connection complete, in both directions of data',
    async (env) => {
      const SIZE = 16 * KiB;
      let produced = 0;
      const gate = deferred();
      let sinkRead = 0;
      let sinkStarted = false;
      const { caller, callee } = await env.open({
        // a connection window far below what the stalled streams hold: connection credit must not be tied up by them
        caller: { connectionWindow: 64 * KiB },
        callee: { connectionWindow: 64 * KiB },
        services: [
          flow({
            onProduce: () => produced++,
            async sink(requests) {
              const first = !sinkStarted; // only the first call's handler stalls
              sinkStarted = true;
              let count = 0;
              for await (const bytes of requests) {
                if (indexOf(bytes) !== count) throw new Error(`request ${count} arrived as ${indexOf(bytes)}`);
                count++;
                if (first) sinkRead = count;
                if (first && count === 1) await gate.promise; // the handler stalls after its first request
              }
              return u32(count);
            },
          }),
        ],
      });
      const c = caller.client(Flow);

      // stream A: the caller reads one response, then stalls with its window full
      const stalled = c.produce(params(64, SIZE));
      const first = await within(stalled.next(), 2000, 'first response of A');
      assert.equal(first.done, false);
      await until(() => produced >= 256 / 16, 2000, "A's producer fills its window");
      // stream B: the handler reads one request, then stalls while the caller still has data to send
      const upload = c.sink(Array.from({ length: 64 }, (_, i) => blob(i, SIZE)));
      await until(() => sinkRead === 1, 2000, "B's handler stalls after one request");
      await sleep(50);
      const producedWhileStalled = produced;

      // other calls, each moving more than the connection window, complete meanwhile
      let count = 0;
      for await (const bytes of c.produce(params(64, SIZE))) {
        assert.ok(sameBytes(bytes, blob(count, SIZE)), `other download item ${count}`);
        count++;
      }
      assert.equal(count, 64, 'a 1 MiB download completes while A and B are stalled');
      const other = await within(c.sink(Array.from({ length: 64 }, (_, i) => blob(i, SIZE))), 3000, 'an upload while A and B are stalled');
      assert.equal(indexOf(other), 64, 'a 1 MiB upload completes while A and B are stalled');
      assert.equal(produced, producedWhileStalled + 64, "A's producer stayed stalled meanwhile");
      assert.equal(sinkRead, 1, "B's handler stayed stalled meanwhile");

      // then the stalled ones finish too, intact
      let rest = 1;
      await within(
        (async () => {
          for await (const bytes of stalled) {
            assert.ok(sameBytes(bytes, blob(rest, SIZE)), `A item ${rest}`);
            rest++;
          }
        })(),
        3000,
        'the rest of A',
      );
      assert.equal(rest, 64);
      gate.resolve();
      assert.equal(indexOf(await within(upload, 3000, 'the rest of B')), 64);
      await streamsGone(caller, callee, 'after the calls');
    },
    { timeout: 15_000 },
  );

  testConnTypes(
    'message credit: 10,000 tiny messages each way through streams whose message window is 4 complete in order',
    async (env) => {
      const N = 10_000;
      const { caller, callee } = await env.open({
        caller: { initialMessageWindow: 4 },
        callee: { initialMessageWindow: 4 },
        services: [flow()],
      });
      const c = caller.client(Flow);
      let next = 0;
      await within(
        (async () => {
          for await (const bytes of c.produce(params(N, 8))) {
            assert.equal(indexOf(bytes), next, 'serverStream order');
            next++;
          }
        })(),
        10_000,
        'serverStream of 10,000',
      );
      assert.equal(next, N);

      assert.equal(indexOf(await within(c.sink(Array.from({ length: N }, (_, i) => u32(i))), 10_000, 'clientStream of 10,000')), N);

      const pipe = c.pipe();
      let echoed = 0;
      const reading = (async () => {
        for await (const bytes of pipe) {
          assert.equal(indexOf(bytes), echoed, 'bidi order');
          echoed++;
        }
      })();
      const writing = (async () => {
        for (let i = 0; i < N; i++) await pipe.send(u32(i));
        pipe.end();
      })();
      await within(Promise.all([reading, writing]), 10_000, 'bidi of 10,000 each way');
      assert.equal(echoed, N);
      assert.equal(caller.core.isOpen && callee.core.isOpen, true, 'no flow-control error closed the connection');
      await streamsGone(caller, callee, 'after the calls');
    },
    { kinds: ['memory', 'tcp'], timeout: 20_000 },
  );
});

// ---------------------------------------------------------------- 64 MiB each way

void describe('streams flow control: 64 MiB each way on one bidi stream', () => {
  const COUNT = 1024;
  const SIZE = 64 * KiB;
  const BIG: RpcSessionOptions = { initialStreamWindow: 128 * MiB, connectionWindow: 128 * MiB };

  testConnTypes(
    'T-S7 with 128 MiB windows both sides finish writing 64 MiB before either reads, then read everything intact',
    async (env) => {
      const handlerWrote = deferred();
      const callerWrote = deferred();
      let handlerRead = 0;
      let handlerBad = -1;
      const { caller, callee } = await env.open({
        caller: BIG,
        callee: BIG,
        services: [
          flow({
            async *pipe(requests) {
              for (let i = 0; i < COUNT; i++) yield blob(i, SIZE);
              handlerWrote.resolve();
              await within(callerWrote.promise, 10_000, 'the caller finishing its writes');
              for await (const m of requests) {
                if (handlerBad < 0 && !sameBytes(m, blob(handlerRead + COUNT, SIZE))) handlerBad = handlerRead;
                handlerRead++;
              }
            },
          }),
        ],
      });
      const pipe = caller.client(Flow).pipe();
      await within(
        (async () => {
          for (let i = 0; i < COUNT; i++) await pipe.send(blob(i + COUNT, SIZE));
        })(),
        8000,
        'the caller writing 64 MiB without reading',
      );
      pipe.end();
      await within(handlerWrote.promise, 8000, 'the handler writing 64 MiB without reading');
      callerWrote.resolve();
      let read = 0;
      let bad = -1;
      await within(
        (async () => {
          for await (const m of pipe) {
            if (bad < 0 && !sameBytes(m, blob(read, SIZE))) bad = read;
            read++;
          }
        })(),
        8000,
        'reading 64 MiB',
      );
      assert.equal(read, COUNT, 'the caller read every response');
      assert.equal(bad, -1, `response ${bad} is intact`);
      assert.equal(handlerRead, COUNT, 'the handler read every request');
      assert.equal(handlerBad, -1, `request ${handlerBad} is intact`);
      await streamsGone(caller, callee, 'after the transfer');
    },
    { kinds: ['memory', 'tcp'], directions: ['forward'], timeout: 20_000 },
  );

  testConnTypes(
    'T-S7 with default windows, both sides writing 64 MiB while reading concurrently complete without deadlock',
    async (env) => {
      let handlerRead = 0;
      let handlerBad = -1;
      const { caller, callee } = await env.open({
        services: [
          flow({
            async *pipe(requests) {
              const reading = (async () => {
                for await (const m of requests) {
                  if (handlerBad < 0 && !sameBytes(m, blob(handlerRead + COUNT, SIZE))) handlerBad = handlerRead;
                  handlerRead++;
                }
              })();
              reading.catch(() => undefined); // awaited below; not unhandled while the writes go on
              for (let i = 0; i < COUNT; i++) yield blob(i, SIZE);
              await reading;
            },
          }),
        ],
      });
      const pipe = caller.client(Flow).pipe();
      const writing = (async () => {
        for (let i = 0; i < COUNT; i++) await pipe.send(blob(i + COUNT, SIZE));
        pipe.end();
      })();
      let read = 0;
      let bad = -1;
      const reading = (async () => {
        for await (const m of pipe) {
          if (bad < 0 && !sameBytes(m, blob(read, SIZE))) bad = read;
          read++;
        }
      })();
      await within(Promise.all([writing, reading]), 12_000, '64 MiB each way');
      assert.equal(read, COUNT, 'the caller read every response');
      assert.equal(bad, -1, `response ${bad} is intact`);
      assert.equal(handlerRead, COUNT, 'the handler read every request');
      assert.equal(handlerBad, -1, `request ${handlerBad} is intact`);
      await streamsGone(caller, callee, 'after the transfer');
    },
    { kinds: ['memory', 'tcp'], directions: ['forward'], timeout: 20_000 },
  );
});

// ---------------------------------------------------------------- a peer that breaks the rules

interface Victim {
  raw: RawPeer;
  session: RpcSession;
}

/** An RpcSession (acceptor unless said otherwise) serving test.Flow to a RawPeer that has sent its HELLO. */
async function victim(
  t: TestContext,
  options: RpcSessionOptions,
  hello: Partial<HelloSettings> = {},
  role: 'acceptor' | 'dialer' = 'acceptor',
): Promise<Victim> {
  const [rawEnd, sessionEnd] = createMemoryPair();
  const session = createSession(sessionEnd, role, options);
  t.after(() => session.destroy());
  const raw = new RawPeer(rawEnd);
  raw.sendBytes(helloFrame(hello));
  await within(session.ready, 1000, 'handshake');
  // an acceptor answers with its HELLO once it has admitted the raw peer: wait until that has arrived too
  await raw.waitFor((f) => f.type === FrameType.HELLO, 1000, "the victim's HELLO");
  return { raw, session };
}

/** Sends a PING and waits for its ACK: every frame sent before it has been handled, and what it caused written. */
async function barrier(raw: RawPeer, opaque: bigint): Promise<void> {
  const from = raw.frames.length;
  raw.send(FrameType.PING, 0, 0, encodePing(opaque));
  await raw.waitFor((f) => f.type === FrameType.PING && (f.flags & Flag.ACK) !== 0, 1000, `PING ACK ${opaque}`, from);
}

/** The victim closed the connection with GOAWAY FLOW_CONTROL_ERROR and a ProtocolError GW_ERR_FLOW_CONTROL. */
async function assertFlowControlError(v: Victim): Promise<void> {
  const goaway = await v.raw.waitFor((f) => f.type === FrameType.GOAWAY, 1000, 'GOAWAY');
  const decoded = decodeGoaway(goaway.payload);
  assert.equal(decoded.code, ConnectionCode.FLOW_CONTROL_ERROR, `GOAWAY ${connectionCodeName(decoded.code)}: ${decoded.message}`);
  const error = await within(v.session.closed, 3000, 'the victim closes');
  assert.ok(error instanceof ProtocolError, `closed with ${String(error)}`);
  assert.equal(error.code, ProtocolErrorCode.FLOW_CONTROL);
  assert.equal(error.code, 'GW_ERR_FLOW_CONTROL');
  await within(v.raw.ended.promise, 1000, 'the raw peer sees the end');
}

const isCredit = (id: number, messages: boolean) => (f: RawFrame): boolean =>
  f.type === FrameType.CREDIT && f.streamId === id && ((f.flags & Flag.MESSAGES) !== 0) === messages;
const SINK = utf8('test.Flow/sink');
const PRODUCE = utf8('test.Flow/produce');
const END_OF_REQUEST = Flag.MESSAGE_END | Flag.END_STREAM;

/** A sink handler that reads `first` requests, then waits for `gate` before reading the rest. */
function stallingSink(first: number, gate: Promise<void>, read: { count: number }): Partial<FlowHandlers> {
  return {
    async sink(requests) {
      if (first === 0) await gate;
      for await (const _ of requests) {
        if (++read.count === first) await gate;
      }
      return u32(read.count);
    },
  };
}

void describe('streams flow control: enforced against a raw peer', () => {
  void test("T-F5 DATA beyond a stream's byte credit while its handler is not reading: GW_ERR_FLOW_CONTROL (no credit came back meanwhile)", { timeout: 5000 }, async (t) => {
    const gate = deferred();
    t.after(() => gate.resolve());
    const read = { count: 0 };
    const v = await victim(t, { initialStreamWindow: 16 * KiB, services: [flow(stallingSink(0, gate.promise, read))] });
    v.raw.send(FrameType.OPEN, 0, 1, encodeOpen(0, 0, SINK));
    v.raw.send(FrameType.DATA, Flag.MESSAGE_END, 1, new Uint8Array(8 * KiB));
    v.raw.send(FrameType.DATA, Flag.MESSAGE_END, 1, new Uint8Array(8 * KiB));
    await barrier(v.raw, 1n);
    assert.equal(v.raw.frames.filter(isCredit(1, false)).length, 0, 'no stream credit for messages nobody has read');
    assert.equal(v.session.core.isOpen, true, 'exactly the window is fine');
    v.raw.send(FrameType.DATA, Flag.MESSAGE_END, 1, new Uint8Array(1));
    await assertFlowControlError(v);
    assert.equal(read.count, 0);
  });

  void test('T-F5 the same on the caller side: responses beyond the byte credit of a serverStream nobody reads: GW_ERR_FLOW_CONTROL', { timeout: 5000 }, async (t) => {
    const v = await victim(t, { initialStreamWindow: 16 * KiB }, {}, 'dialer');
    const responses = v.session.client(Flow).produce(params(100, 8 * KiB)); // never read
    const open = await v.raw.waitFor((f) => f.type === FrameType.OPEN, 1000, 'the OPEN of the call');
    const id = open.streamId;
    v.raw.send(FrameType.DATA, Flag.MESSAGE_END, id, new Uint8Array(8 * KiB));
    v.raw.send(FrameType.DATA, Flag.MESSAGE_END, id, new Uint8Array(8 * KiB));
    await barrier(v.raw, 1n);
    assert.equal(v.raw.frames.filter(isCredit(id, false)).length, 0, 'no stream credit for responses nobody has read');
    assert.equal(v.session.core.isOpen, true);
    v.raw.send(FrameType.DATA, Flag.MESSAGE_END, id, new Uint8Array(1));
    await assertFlowControlError(v);
    await assert.rejects(responses.next(), 'the call fails with the connection');
  });

  void test('T-F5 reading returns exactly the credit consumed: the peer may send that much more, and not a byte beyond', { timeout: 5000 }, async (t) => {
    const gate = deferred();
    t.after(() => gate.resolve());
    const read = { count: 0 };
    const v = await victim(t, { initialStreamWindow: 16 * KiB, services: [flow(stallingSink(1, gate.promise, read))] });
    v.raw.send(FrameType.OPEN, 0, 1, encodeOpen(0, 0, SINK));
    v.raw.send(FrameType.DATA, Flag.MESSAGE_END, 1, new Uint8Array(8 * KiB));
    v.raw.send(FrameType.DATA, Flag.MESSAGE_END, 1, new Uint8Array(8 * KiB));
    await until(() => read.count === 1, 1000, 'the handler read one request');
    await barrier(v.raw, 1n);
    const credits = v.raw.frames.filter(isCredit(1, false)).map((f) => decodeCredit(f.payload));
    assert.deepEqual(credits, [8 * KiB], 'the 8 KiB the handler consumed come back, the unread 8 KiB do not');
    v.raw.send(FrameType.DATA, Flag.MESSAGE_END, 1, new Uint8Array(8 * KiB));
    await barrier(v.raw, 2n);
    assert.equal(v.session.core.isOpen, true, 'the returned 8 KiB may be used');
    v.raw.send(FrameType.DATA, 0, 1, new Uint8Array(1)); // a fragment, not even a whole message
    await assertFlowControlError(v);
  });

  void test('T-F5 more complete messages than the message window (HELLO INITIAL_MESSAGE_WINDOW 4) while the handler is not reading: GW_ERR_FLOW_CONTROL', { timeout: 5000 }, async (t) => {
    const gate = deferred();
    t.after(() => gate.resolve());
    const read = { count: 0 };
    const v = await victim(t, { initialMessageWindow: 4, services: [flow(stallingSink(0, gate.promise, read))] });
    const hello = v.raw.frames.find((f) => f.type === FrameType.HELLO);
    assert.ok(hello, 'the victim sent its HELLO');
    assert.equal(decodeHello(hello.payload).settings.initialMessageWindow, 4, 'HELLO announces INITIAL_MESSAGE_WINDOW 4');
    v.raw.send(FrameType.OPEN, 0, 1, encodeOpen(0, 0, SINK));
    for (let i = 0; i < 4; i++) v.raw.send(FrameType.DATA, Flag.MESSAGE_END, 1, u32(i));
    v.raw.send(FrameType.DATA, 0, 1, u32(4)); // a fragment without MESSAGE_END needs no message credit
    await barrier(v.raw, 1n);
    assert.equal(v.raw.frames.filter(isCredit(1, true)).length, 0, 'no message credit for messages nobody has read');
    assert.equal(v.session.core.isOpen, true, 'four messages are fine');
    v.raw.send(FrameType.DATA, Flag.MESSAGE_END, 1, new Uint8Array(0)); // completes a fifth message
    await assertFlowControlError(v);
  });

  void test('T-F5 consumed messages come back as CREDIT with MESSAGES: the peer may send exactly that many more', { timeout: 5000 }, async (t) => {
    const gate = deferred();
    t.after(() => gate.resolve());
    const read = { count: 0 };
    const v = await victim(t, { initialMessageWindow: 4, services: [flow(stallingSink(2, gate.promise, read))] });
    v.raw.send(FrameType.OPEN, 0, 1, encodeOpen(0, 0, SINK));
    for (let i = 0; i < 4; i++) v.raw.send(FrameType.DATA, Flag.MESSAGE_END, 1, u32(i));
    await until(() => read.count === 2, 1000, 'the handler read two requests');
    await barrier(v.raw, 1n);
    const credits = v.raw.frames.filter(isCredit(1, true));
    assert.deepEqual(credits.map((f) => decodeCredit(f.payload)), [2], 'two messages consumed, two message credits back');
    assert.equal(credits[0]!.flags, Flag.MESSAGES, 'CREDIT flags = MESSAGES (0x01)');
    for (let i = 4; i < 6; i++) v.raw.send(FrameType.DATA, Flag.MESSAGE_END, 1, u32(i));
    await barrier(v.raw, 2n);
    assert.equal(v.session.core.isOpen, true, 'the two returned message credits may be used');
    v.raw.send(FrameType.DATA, Flag.MESSAGE_END, 1, u32(6));
    await assertFlowControlError(v);
  });

  void test('T-F5 a CREDIT with the MESSAGES flag on stream 0: GW_ERR_FLOW_CONTROL (the connection has no message window)', { timeout: 5000 }, async (t) => {
    const v = await victim(t, { services: [flow()] });
    v.raw.send(FrameType.CREDIT, 0, 0, encodeCredit(64 * KiB));
    await barrier(v.raw, 1n);
    assert.equal(v.session.core.isOpen, true, 'a byte CREDIT on stream 0 is fine');
    v.raw.send(FrameType.CREDIT, Flag.MESSAGES, 0, encodeCredit(1));
    await assertFlowControlError(v);
  });

  void test("our sender keeps to the peer's message window (HELLO INITIAL_MESSAGE_WINDOW 2) and to each CREDIT MESSAGES", { timeout: 5000 }, async (t) => {
    const v = await victim(t, { services: [flow()] }, { initialMessageWindow: 2 });
    const messages = (): RawFrame[] => v.raw.frames.filter((f) => f.type === FrameType.DATA && f.streamId === 1 && (f.flags & Flag.MESSAGE_END) !== 0);
    v.raw.send(FrameType.OPEN, 0, 1, encodeOpen(0, 0, PRODUCE));
    v.raw.send(FrameType.DATA, Flag.MESSAGE_END | Flag.END_STREAM, 1, params(10, 100));
    await v.raw.waitFor((f) => f.type === FrameType.DATA && f.streamId === 1, 1000, 'the first response');
    await sleep(30);
    await barrier(v.raw, 1n);
    assert.equal(messages().length, 2, 'two messages, then it waits');
    v.raw.send(FrameType.CREDIT, Flag.MESSAGES, 1, encodeCredit(3));
    await until(() => messages().length >= 5, 1000, 'three more after CREDIT MESSAGES 3');
    await sleep(30);
    await barrier(v.raw, 2n);
    assert.equal(messages().length, 5, 'exactly three more');
    v.raw.send(FrameType.CREDIT, Flag.MESSAGES, 1, encodeCredit(100));
    await v.raw.waitFor((f) => f.streamId === 1 && (f.type === FrameType.END || (f.flags & Flag.END_STREAM) !== 0), 1000, 'the end of the stream');
    const all = messages();
    assert.equal(all.length, 10);
    all.forEach((f, i) => assert.ok(sameBytes(f.payload, blob(i, 100)), `response ${i}`));
  });
});

void describe('flow control: connection credit', () => {
  // Regression found by review (fixed in 804d265: no duplicate connection waiters).
  // 90 CREDIT frames: within what the peer guard allows before we have sent any DATA (100 + 4 for the stream; more is a
  // CREDIT flood, test/session/dos-floods.test.ts).
  void test('90 stream CREDIT frames for one stream blocked on a zero connection window do not multiply its scheduling; the data flows once connection credit arrives', { timeout: 5000 }, async (t) => {
    const { raw, session } = againstRawPeer(t, 'dialer', {}, { connectionWindow: 0 });
    await within(session.ready, 1000, 'handshake');
    // Peeking at a private field is acceptable in a regression test: the streams parked for connection credit are
    // StreamScheduler.waitingForConnectionCredit, in the session's Outbox (Session.connectionWaiters before the scheduler
    // got its own module).
    const parked = (): number => {
      const core = session.core as unknown as { outbox?: { scheduler?: { waitingForConnectionCredit?: { length?: unknown } } } };
      const length = core.outbox?.scheduler?.waitingForConnectionCredit?.length;
      assert.ok(typeof length === 'number', 'the list of streams parked for connection credit was not found (renamed?)');
      return length;
    };
    const request = new Uint8Array(20_000).fill(9);
    const call = session.client(Bytes).echo(request);
    await raw.waitFor((f) => f.type === FrameType.OPEN && f.streamId === 1, 1000, 'the OPEN of stream 1');
    await sleep(5);
    for (let i = 0; i < 90; i++) {
      raw.send(FrameType.CREDIT, 0, 1, encodeCredit(1));
      // one CREDIT per delivery and per flush, as a peer trickling them would
      await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setImmediate(resolve));
    }
    await pingBarrier(raw, 1n);
    assert.ok(parked() <= 1, `the blocked stream is parked ${parked()} times`);
    assert.equal(raw.ofType(FrameType.DATA).length, 0, 'nothing was sent without connection credit');

    raw.send(FrameType.CREDIT, 0, 0, encodeCredit(1024 * 1024));
    await until(() => raw.frames.some((f) => f.type === FrameType.DATA && f.streamId === 1 && (f.flags & Flag.END_STREAM) !== 0), 1000, 'the whole request');
    const sent = raw.ofType(FrameType.DATA).filter((f) => f.streamId === 1);
    assert.equal(
      sent.reduce((n, f) => n + f.payload.length, 0),
      request.length,
      'the request is sent exactly once',
    );
    raw.send(FrameType.DATA, END_OF_REQUEST, 1, Uint8Array.of(1));
    assert.deepEqual(await within(call, 1000, 'the call'), Uint8Array.of(1));
    assert.equal(parked(), 0);
  });
});
